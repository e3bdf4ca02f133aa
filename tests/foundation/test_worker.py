"""A real Celery worker process, on the configured broker, runs a task that writes a row."""

import time

import pytest

from migrations_audit.models import WorkerHeartbeat
from migrations_audit.tasks import heartbeat

pytestmark = pytest.mark.slow


def test_a_real_worker_executes_a_task_that_writes_a_row(celery_worker):
    heartbeat.delay()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not WorkerHeartbeat.objects.exists():
        time.sleep(0.2)
    row = WorkerHeartbeat.objects.get()
    assert row.hostname.startswith("test-")
