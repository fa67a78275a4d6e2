"""Signups' pure rules: no I/O, no clock reads (callers pass `now`)."""
