"""The weekly digest: one email per team with every upstream's release-gate status."""

from django.conf import settings
from django.core.mail import EmailMessage
from django.urls import reverse

from migrations_audit.models import Team

from .acknowledgements import acknowledgements_expire
from .build import report_payload


def team_gate_statuses(*, team: Team) -> list[dict]:
    """Per upstream of the team (baseline -> target): the gate's verdict at the default level."""
    statuses = []
    for upstream in team.upstreams.order_by("name"):
        row = {"upstream": upstream.name, "slug": upstream.slug, "versions": "", "status": "not configured"}
        if upstream.baseline_version and upstream.target_version:
            acknowledgements_expire(upstream=upstream)
            payload = report_payload(
                upstream=upstream, version_from=upstream.baseline_version, version_to=upstream.target_version
            )
            row["versions"] = f"{upstream.baseline_version} -> {upstream.target_version}"
            if not payload["summary"]["exchanges_compared"]:
                row["status"] = "no replay yet"
            else:
                row["status"] = "passes" if payload["gate"]["passed"] else "fails"
            row["failing"] = len(payload["gate"]["failing"])
            row["breaking"] = payload["summary"]["breaking"]
            row["unexplained"] = payload["summary"]["unexplained"]
        statuses.append(row)
    return statuses


def team_digest_send(*, team: Team) -> int:
    """Email the digest to the team's members who have an address; returns how many it went to."""
    recipients = sorted({u.email for u in team.members.filter(is_active=True) if u.email})
    if not recipients or not team.upstreams.exists():
        return 0
    site = settings.SITE_URL.rstrip("/")
    lines = [f"Release gates of {team.name} this week:", ""]
    for row in team_gate_statuses(team=team):
        detail = (
            f" ({row['failing']} failing, {row['breaking']} breaking, {row['unexplained']} unexplained)"
            if "failing" in row
            else ""
        )
        link = site + reverse("migrations_audit:acknowledgements", args=[row["slug"]])
        lines.append(f"- {row['upstream']} {row['versions']}: {row['status']}{detail}  {link}")
    EmailMessage(
        subject=f"[Migration Audit] Weekly digest for {team.name}", body="\n".join(lines), to=recipients
    ).send()
    return len(recipients)
