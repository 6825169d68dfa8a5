"""Checks before a run: parameters (types, config files) and every step's own check (preflight)."""
