"""The diff stage: what changed between versions, why, and whether it breaks.

The pure core (compare_responses and what it uses) needs no database; services, selectors and
the models import it, never the other way round.
"""

from .changes import ADDITIVE, BREAKING, NOISE, Change
from .compare import ResponseSnapshot, compare_responses
from .noise import NoiseModel

__all__ = ["ADDITIVE", "BREAKING", "NOISE", "Change", "NoiseModel", "ResponseSnapshot", "compare_responses"]
