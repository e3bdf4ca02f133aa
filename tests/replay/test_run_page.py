"""What a run's page says while it waits, and what it offers once it ends."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from migrations_audit import services
from migrations_audit.models import ReplayResult, Upstream, WorkerHeartbeat
from migrations_audit.replay.runs import run_cancel, run_start
from migrations_audit.replay.selectors import run_progress
from tests.replay.test_replay import record


@pytest.fixture
def run(upstream_a, alice):
    record(upstream_a, 3)
    return run_start(upstream=upstream_a, versions=["2023-06-01", "2026-10-21"], created_by=alice)


def poll(client, run):
    url = reverse("migrations_audit:run", args=[run.upstream.slug, run.pk])
    return client.get(url, headers={"HX-Request": "true"}).content.decode()


def test_a_waiting_run_says_no_worker_is_running_until_one_reports(client, alice, run):
    client.force_login(alice)
    assert "No worker is running" in poll(client, run)
    services.worker_heartbeat_record(hostname="w1@host")
    assert "No worker is running" not in poll(client, run)
    WorkerHeartbeat.objects.update(seen_at=timezone.now() - timedelta(minutes=10))
    page = poll(client, run)
    assert "No worker is running" in page and "10\xa0minutes ago" in page


def test_a_run_that_cannot_send_says_why_and_where_it_is_in_the_queue(client, alice, upstream_a, run):
    later = run_start(upstream=upstream_a, versions=["2026-10-21"], created_by=alice)
    Upstream.objects.filter(pk=upstream_a.pk).update(rate_limit_concurrency=0)
    client.force_login(alice)
    page = poll(client, later)
    assert "allows 0 request(s) in flight" in page
    assert "1 run(s) started before this one are still in the queue" in page


def test_the_cancel_button_goes_with_the_polled_progress_once_the_run_ends(client, alice, run):
    client.force_login(alice)
    assert "Cancel</button>" in poll(client, run)
    run_cancel(run=run)
    full = client.get(reverse("migrations_audit:run", args=[run.upstream.slug, run.pk])).content.decode()
    assert "Cancel</button>" not in full and "Resume</button>" in full


def test_retries_are_counted_by_the_database(run):
    ReplayResult.objects.filter(run=run).update(tries=1)
    first, second = ReplayResult.objects.filter(run=run)[:2]
    ReplayResult.objects.filter(pk=first.pk).update(tries=3)
    ReplayResult.objects.filter(pk=second.pk).update(tries=2)
    assert run_progress(run=run)["retries"] == 3
