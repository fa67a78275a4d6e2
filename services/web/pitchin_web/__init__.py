"""Pitch In web: server-rendered pages for donors, organisers and federation staff (a backend-for-frontend)."""
