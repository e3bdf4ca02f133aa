"""Acknowledgements: a team admin's decision that a finding may ship, and the audit trail of each.

Only a team's admins acknowledge and revoke (`user_can_acknowledge`); viewers and members read.
Every change is an `AcknowledgementEvent` (who, when, why, from where); an acknowledgement past its
expiry date stops counting at once, and `acknowledgements_expire` records that it expired.
"""

from dataclasses import dataclass
from datetime import date

from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from migrations_audit import selectors
from migrations_audit.diff import selectors as diff_selectors
from migrations_audit.models import (
    Acknowledgement,
    AcknowledgementEvent,
    Client,
    DifferenceSignature,
    Membership,
    Team,
    Upstream,
)

from .findings import difference_title, request_signature, request_title

REASON_MAX = 2000


class AcknowledgementError(ValueError):
    """A request to acknowledge that cannot be honoured; the message says why, for the user."""


def user_can_acknowledge(*, user, team: Team) -> bool:
    return selectors.membership_role(user=user, team=team) == Membership.Role.ADMIN


# --- Selectors ----------------------------------------------------------------------------------


def acknowledgements_active(*, upstream: Upstream, today: date | None = None) -> QuerySet[Acknowledgement]:
    """The acknowledgements that count in the gate now: not revoked, and not past their expiry day."""
    today = today or timezone.localdate()
    return Acknowledgement.objects.filter(upstream=upstream, state=Acknowledgement.State.ACTIVE).filter(
        Q(expires_on__isnull=True) | Q(expires_on__gte=today)
    )


def acknowledgements_for_upstream(*, upstream: Upstream) -> QuerySet[Acknowledgement]:
    """Every acknowledgement of an upstream, newest first, with its client, author and audit trail."""
    return (
        Acknowledgement.objects.filter(upstream=upstream)
        .select_related("client", "created_by")
        .prefetch_related("events")
    )


def acknowledgement_for_signature(*, upstream: Upstream, signature: str) -> Acknowledgement | None:
    return acknowledgements_active(upstream=upstream).filter(signature=signature).first()


@dataclass(frozen=True)
class RequestFindingOpen:
    """The requests one client sends that a version rejects under one rule."""

    signature: str
    rule_signature: str
    version: str
    rule_key: str
    rule_title: str
    client: Client | None
    exchanges: int

    @property
    def title(self) -> str:
        return request_title(rule_key=self.rule_key, client=_client_name(self.client))


def request_findings_open(*, upstream: Upstream, version: str) -> list[RequestFindingOpen]:
    rows = diff_selectors.request_findings_by_client(upstream=upstream, version=version)
    clients = Client.objects.in_bulk([row["client_id"] for row in rows if row["client_id"]])
    found = []
    for row in rows:
        client = clients.get(row["client_id"])
        found.append(
            RequestFindingOpen(
                signature=request_signature(
                    version_to=version,
                    rule_key=row["rule__key"],
                    client_identity=client.identity if client else "",
                ),
                rule_signature=request_signature(
                    version_to=version, rule_key=row["rule__key"], client_identity=None
                ),
                version=version,
                rule_key=row["rule__key"],
                rule_title=row["rule__title"],
                client=client,
                exchanges=row["exchanges"],
            )
        )
    return found


def _client_name(client: Client | None) -> str:
    return client.display_name if client else "unidentified clients"


# --- Services -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    finding: str
    signature: str
    title: str
    client: Client | None


def _target(*, upstream: Upstream, signature: str, client_id: int | None) -> _Target:
    """What a signature names: a difference (acknowledged for everyone) or one client's rejected
    requests (acknowledged for that client only)."""
    difference = (
        DifferenceSignature.objects.filter(upstream=upstream, signature=signature)
        .exclude(classification="noise")
        .first()
    )
    if difference is not None:
        if client_id:
            raise AcknowledgementError(
                "A difference found by replay is acknowledged for every client at once."
            )
        return _Target(
            finding=Acknowledgement.Finding.DIFFERENCE,
            signature=signature,
            title=difference_title(kind=difference.kind, path=difference.path, endpoint=difference.endpoint),
            client=None,
        )
    versions = {upstream.target_version} | set(
        upstream.request_findings.values_list("version", flat=True).distinct()
    )
    for version in sorted(v for v in versions if v):
        for found in request_findings_open(upstream=upstream, version=version):
            if signature == found.rule_signature and not client_id:
                raise AcknowledgementError(
                    "A request the target version rejects is acknowledged per client, never for "
                    "everyone: choose the client that will be fixed before the deadline."
                )
            if signature == found.signature or (
                signature == found.rule_signature and found.client and found.client.pk == client_id
            ):
                if found.client is None:
                    raise AcknowledgementError(
                        "Requests with no client identity cannot be acknowledged: name the client "
                        "(X-Audit-Client) so that someone can answer for it."
                    )
                return _Target(
                    finding=Acknowledgement.Finding.REQUEST,
                    signature=found.signature,
                    title=found.title,
                    client=found.client,
                )
    raise AcknowledgementError("No current finding of this upstream has that signature.")


def acknowledgement_create(
    *,
    upstream: Upstream,
    signature: str,
    reason: str,
    user,
    via: str,
    expires_on: date | None = None,
    client_id: int | None = None,
) -> Acknowledgement:
    """Acknowledge a finding. The caller has checked `user_can_acknowledge`."""
    reason = (reason or "").strip()
    if not reason:
        raise AcknowledgementError("Say why it may ship: the reason is kept in the audit trail.")
    if len(reason) > REASON_MAX:
        raise AcknowledgementError(f"Keep the reason under {REASON_MAX} characters.")
    today = timezone.localdate()
    if expires_on is not None and expires_on < today:
        raise AcknowledgementError("The expiry date is already past.")
    target = _target(upstream=upstream, signature=(signature or "").strip().lower(), client_id=client_id)
    if target.finding == Acknowledgement.Finding.REQUEST and expires_on is None:
        raise AcknowledgementError(
            "A client's rejected requests are acknowledged until a date: the deadline by which it "
            "will be fixed."
        )
    acknowledgements_expire(upstream=upstream)
    try:
        with transaction.atomic():
            acknowledgement = Acknowledgement.objects.create(
                upstream=upstream,
                signature=target.signature,
                finding=target.finding,
                client=target.client,
                title=target.title[:700],
                reason=reason,
                expires_on=expires_on,
                created_by=user,
            )
            _event(acknowledgement, AcknowledgementEvent.Action.CREATED, user=user, via=via, reason=reason)
    except IntegrityError:
        raise AcknowledgementError("This finding is already acknowledged: revoke that one first.") from None
    return acknowledgement


def acknowledgement_revoke(*, acknowledgement: Acknowledgement, reason: str, user, via: str) -> bool:
    """Revoke an active acknowledgement; False if it had already ended (revoked or expired)."""
    reason = (reason or "").strip()
    if not reason:
        raise AcknowledgementError("Say why it is revoked: the reason is kept in the audit trail.")
    with transaction.atomic():
        won = Acknowledgement.objects.filter(
            pk=acknowledgement.pk, state=Acknowledgement.State.ACTIVE
        ).update(state=Acknowledgement.State.REVOKED, ended_at=timezone.now())
        if won:
            _event(acknowledgement, AcknowledgementEvent.Action.REVOKED, user=user, via=via, reason=reason)
    acknowledgement.refresh_from_db()
    return bool(won)


def acknowledgements_expire(*, upstream: Upstream | None = None, today: date | None = None) -> int:
    """Record the expiry of the acknowledgements past their date (they stopped counting already)."""
    today = today or timezone.localdate()
    due = Acknowledgement.objects.filter(state=Acknowledgement.State.ACTIVE, expires_on__lt=today)
    if upstream is not None:
        due = due.filter(upstream=upstream)
    expired = 0
    for acknowledgement in due:
        with transaction.atomic():
            won = Acknowledgement.objects.filter(
                pk=acknowledgement.pk, state=Acknowledgement.State.ACTIVE
            ).update(state=Acknowledgement.State.EXPIRED, ended_at=timezone.now())
            if won:
                _event(
                    acknowledgement,
                    AcknowledgementEvent.Action.EXPIRED,
                    user=None,
                    via="schedule",
                    reason=f"Its expiry date ({acknowledgement.expires_on.isoformat()}) passed.",
                )
                expired += 1
    return expired


def _event(acknowledgement: Acknowledgement, action: str, *, user, via: str, reason: str) -> None:
    AcknowledgementEvent.objects.create(
        acknowledgement=acknowledgement,
        action=action,
        actor=user,
        actor_name=user.get_username() if user is not None else "system",
        via=via,
        reason=reason,
    )
