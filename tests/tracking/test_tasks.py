"""The periodic refresh: declared in the one schedule, and run by a real worker process."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from dashboard.celery import app
from dashboard.schedules import BEAT_SCHEDULE
from migrations_audit.models import Migration, Status
from migrations_audit.tasks import tracking_refresh_active
from migrations_audit.tracking import services

from .factories import sdk_traffic


def test_refresh_is_scheduled_every_minute():
    entry = BEAT_SCHEDULE["tracking-refresh"]
    assert entry["task"] in app.tasks
    assert entry["schedule"] <= 60


@pytest.mark.slow
def test_a_real_worker_refreshes_open_migrations_only(celery_worker, upstream_a):
    sdk_traffic(upstream=upstream_a, release="1.17.0", key="sk-ant-worker", days_ago=[2, 1])
    deadline = timezone.localdate() + timedelta(days=90)
    open_one = services.migration_create(
        upstream=upstream_a, name="Open", target_version="2026-10-21", deadline=deadline
    )
    closed = services.migration_create(
        upstream=upstream_a, name="Closed", target_version="2026-10-21", deadline=deadline
    )
    Migration.objects.filter(pk=closed.pk).update(closed_at=timezone.now())

    tracking_refresh_active.delay()
    give_up = time.monotonic() + 60
    while time.monotonic() < give_up and not Migration.objects.get(pk=open_one.pk).refreshed_at:
        time.sleep(0.2)
    open_one.refresh_from_db()
    assert open_one.refreshed_at is not None, celery_worker.log
    assert open_one.states.get().derived_status == Status.NOT_STARTED
    assert open_one.status_changes.count() == 1
    closed.refresh_from_db()
    assert closed.refreshed_at is None and not closed.states.exists()


def test_a_completed_replay_run_queues_a_refresh_of_its_upstreams_open_migrations(
    upstream_a, upstream_b, tasks_eager, django_capture_on_commit_callbacks
):
    """The run's results reach the board without waiting for the periodic refresh."""
    from migrations_audit.models import ReplayResult, ReplayRun
    from migrations_audit.replay.diffing import run_complete_if_done

    sdk_traffic(upstream=upstream_a, release="1.17.0", key="sk-ant-replayed", days_ago=[2, 1])
    deadline = timezone.localdate() + timedelta(days=90)
    open_one = services.migration_create(
        upstream=upstream_a, name="Open", target_version="2026-10-21", deadline=deadline
    )
    closed = services.migration_create(
        upstream=upstream_a, name="Closed", target_version="2026-10-21", deadline=deadline
    )
    Migration.objects.filter(pk=closed.pk).update(closed_at=timezone.now())
    elsewhere = services.migration_create(
        upstream=upstream_b, name="Other team", target_version="2026-10-21", deadline=deadline
    )
    run = ReplayRun.objects.create(
        upstream=upstream_a, status=ReplayRun.Status.RUNNING, versions=["a", "b"], prepared_at=timezone.now()
    )
    assert not ReplayResult.objects.filter(run=run).exists()
    with django_capture_on_commit_callbacks(execute=True):
        run_complete_if_done(run.pk)
    run.refresh_from_db()
    assert run.status == ReplayRun.Status.COMPLETED
    assert Migration.objects.get(pk=open_one.pk).refreshed_at is not None
    assert Migration.objects.get(pk=closed.pk).refreshed_at is None, "a closed migration is left alone"
    assert Migration.objects.get(pk=elsewhere.pk).refreshed_at is None


def test_a_refresh_costs_the_same_queries_for_3_or_30_clients(upstream_a):
    """The refresh task's queries do not grow with the number of clients whose status stays put."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    deadline = timezone.localdate() + timedelta(days=90)
    migration = services.migration_create(
        upstream=upstream_a, name="Scale", target_version="2026-10-21", deadline=deadline
    )

    def steady_refresh_queries() -> int:
        services.migration_refresh(migration=migration)  # new states are written one by one, once
        with CaptureQueriesContext(connection) as queries:
            services.migration_refresh(migration=migration)
        return len(queries)

    for index in range(3):
        sdk_traffic(upstream=upstream_a, release="1.17.0", key=f"sk-ant-few-{index}", days_ago=[2, 1])
    few = steady_refresh_queries()
    for index in range(27):
        sdk_traffic(upstream=upstream_a, release="1.17.0", key=f"sk-ant-many-{index}", days_ago=[2, 1])
    many = steady_refresh_queries()
    assert migration.states.count() == 30
    assert many <= few, f"{few} -> {many} queries"
