"""Scheduling's pure rules: no I/O, no clock reads."""
