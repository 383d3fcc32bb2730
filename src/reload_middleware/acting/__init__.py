"""What to do about a change, and doing it: preflight, restart, in-process reload."""
