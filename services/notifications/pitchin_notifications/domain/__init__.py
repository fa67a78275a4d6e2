"""Notifications' pure rules: who is told what, on which channel; retry timing."""
