"""Every periodic schedule of the product, in one place.

Report schedules that users edit on the Reports page are rows, not entries here: the
`reports_due` tick below runs whichever of them are due. (django-celery-beat would keep them in its
own tables, but its releases pin Django below 6.1.)
"""

from celery.schedules import crontab
from django.conf import settings

BEAT_SCHEDULE = {
    "reports-due": {
        "task": "migrations_audit.tasks.reports_due",
        "schedule": float(settings.REPORTS_TICK_SECONDS),
    },
    # Re-queue replay work that a lost message or a killed worker left behind.
    "replay-reconcile": {
        "task": "migrations_audit.tasks.replay_reconcile",
        "schedule": float(settings.REPLAY_RECONCILE_SECONDS),
    },
    # Each team's weekly digest of its upstreams' release gates: Mondays 08:00 UTC.
    "team-digests": {
        "task": "migrations_audit.tasks.team_digests",
        "schedule": crontab(minute=0, hour=8, day_of_week=1),
    },
    "heartbeat": {
        "task": "migrations_audit.tasks.heartbeat",
        "schedule": 60.0,
    },
    # Each open migration's client statuses, derived again from the traffic recorded since.
    "tracking-refresh": {
        "task": "migrations_audit.tasks.tracking_refresh_active",
        "schedule": 60.0,
    },
}
