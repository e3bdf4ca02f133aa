"""Every periodic schedule of the product, in one place.

Report schedules that users edit on the Reports page are rows, not entries here: the
`reports_due` tick below runs whichever of them are due. (django-celery-beat would keep them in its
own tables, but its releases pin Django below 6.1.)
"""

from django.conf import settings

BEAT_SCHEDULE = {
    "reports-due": {
        "task": "migrations_audit.tasks.reports_due",
        "schedule": float(settings.REPORTS_TICK_SECONDS),
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
