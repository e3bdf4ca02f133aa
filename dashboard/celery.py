"""The Celery app. Tasks live in migrations_audit.tasks; schedules in dashboard.schedules."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")

app = Celery("dashboard")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_finalize.connect
def _declare_schedules(sender, **kwargs):
    from dashboard.schedules import BEAT_SCHEDULE

    sender.conf.beat_schedule = BEAT_SCHEDULE


@app.on_after_finalize.connect
def _report_ready_workers(sender, **kwargs):
    from celery.signals import worker_ready

    worker_ready.connect(_heartbeat_on_ready, weak=False)


def _heartbeat_on_ready(sender=None, **kwargs):
    # A worker is shown alive from its start, not only after beat's first heartbeat a minute later.
    from migrations_audit import services

    services.worker_heartbeat_record(hostname=getattr(sender, "hostname", None) or "local")
