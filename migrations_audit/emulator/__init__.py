"""A faithful emulator of the Anthropic API under its three versions, for demos, tests and benchmarks.

`respond()` is the whole behaviour as a pure function; `server` serves it over HTTP (see README.md).
"""

from .core import EmulatedResponse, EmulatorOptions, respond

__all__ = ["EmulatedResponse", "EmulatorOptions", "respond"]
