"""Accidental migrations: a client's change of API version that came together with a move to another
SDK major (an upgrade that switched versions without anyone deciding to), with the error rates before
and after it. Built on the traffic facts (traffic.py)."""

from django.db.models import Count, Q, QuerySet

from .sdk import sdk_move
from .traffic import ERROR, ClientTraffic


def accidental_migration(*, facts: ClientTraffic, exchanges: QuerySet) -> dict | None:
    """The latest change of version that came together with a new SDK major, with error rates.

    `exchanges` are the client's exchanges; the error rate is the share of 4xx/5xx (or no response)
    before and after the first request of the new era.
    """
    eras = [era for era in facts.eras if era.sdk is not None and era.sdk.major is not None]
    found = None
    for before in eras:
        for after in eras:
            if (
                after.first_at > before.first_at
                and after.sdk.language == before.sdk.language
                and after.sdk.major != before.sdk.major
                and after.api_version != before.api_version
                and (found is None or after.first_at > found[1].first_at)
            ):
                found = (before, after)
    if found is None:
        return None
    before, after = found
    counts = exchanges.aggregate(
        before=Count("id", filter=Q(started_at__lt=after.first_at)),
        before_errors=Count("id", filter=Q(started_at__lt=after.first_at) & ERROR),
        after=Count("id", filter=Q(started_at__gte=after.first_at)),
        after_errors=Count("id", filter=Q(started_at__gte=after.first_at) & ERROR),
    )
    return {
        "at": after.first_at,
        "sdk_before": str(before.sdk),
        "sdk_after": str(after.sdk),
        "sdk_move": sdk_move(before.sdk, after.sdk),
        "version_before": before.api_version,
        "version_after": after.api_version,
        "key_header_before": before.key_header,
        "key_header_after": after.key_header,
        "requests_before": counts["before"],
        "requests_after": counts["after"],
        "error_rate_before": _rate(counts["before_errors"], counts["before"]),
        "error_rate_after": _rate(counts["after_errors"], counts["after"]),
        "example_before": before.example_id,
        "example_after": after.example_id,
    }


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None
