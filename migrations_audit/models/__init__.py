"""The data model, one module per stage of the pipeline."""

from .capture import Exchange, HarImport
from .core import ApiToken, ApiVersion, Client, Membership, Team, Upstream, WorkerHeartbeat
from .diff import (
    ChangelogRule,
    ComparisonTally,
    Difference,
    DifferenceSignature,
    ExchangeComparison,
    RequestFinding,
)
from .replay import ReplayAttempt, ReplayResult, ReplayRun

__all__ = [
    "ApiToken",
    "ApiVersion",
    "ChangelogRule",
    "Client",
    "ComparisonTally",
    "Difference",
    "DifferenceSignature",
    "Exchange",
    "ExchangeComparison",
    "HarImport",
    "Membership",
    "ReplayAttempt",
    "ReplayResult",
    "ReplayRun",
    "RequestFinding",
    "Team",
    "Upstream",
    "WorkerHeartbeat",
]
