"""Pure rules of the web front: no I/O, no clock reads (`now` is passed in)."""
