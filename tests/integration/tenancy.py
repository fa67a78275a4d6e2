"""The federation the service-level tests work in, and the callers they meet there."""

from __future__ import annotations

from pitchin_core.auth import Caller

FED, ORG, OTHER_ORG = "fed-wm", "org-dudley-cvs", "org-unite-wm"
ORGANISER = Caller(FED, ORG, "organiser")
NEIGHBOUR = Caller(FED, OTHER_ORG, "organiser")
STAFF = Caller(FED, None, "federation-staff")
STRANGER = Caller("fed-elsewhere", None, "federation-staff")
