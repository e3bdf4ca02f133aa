"""The data model, one module per stage of the pipeline."""

from .capture import Exchange, HarImport, RecorderTotals, TrafficDay
from .core import ApiToken, ApiVersion, Client, Membership, Team, Upstream, WorkerHeartbeat
from .diff import (
    ChangelogRule,
    ComparisonTally,
    Difference,
    DifferenceSignature,
    ExchangeComparison,
    ModelRule,
    RequestFinding,
)
from .replay import RateLimiterState, ReplayAttempt, ReplayResult, ReplayRun, ReplayVariant
from .reports import (
    Acknowledgement,
    AcknowledgementEvent,
    ReportDefinition,
    ReportDelivery,
    ReportSnapshot,
)
from .tracking import Migration, MigrationClientState, Status, StatusChange

__all__ = [
    "Acknowledgement",
    "AcknowledgementEvent",
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
    "Migration",
    "MigrationClientState",
    "ModelRule",
    "RateLimiterState",
    "RecorderTotals",
    "ReplayAttempt",
    "ReplayResult",
    "ReplayRun",
    "ReplayVariant",
    "ReportDefinition",
    "ReportDelivery",
    "ReportSnapshot",
    "RequestFinding",
    "Status",
    "StatusChange",
    "Team",
    "TrafficDay",
    "Upstream",
    "WorkerHeartbeat",
]
