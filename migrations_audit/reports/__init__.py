"""Compatibility reports: snapshots of what breaks, who is affected and what changed since last time."""
