"""Replay: send recorded exchanges again under each API version, within the upstream's limits."""
