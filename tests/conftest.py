"""Fixtures shared by every test: the users of our stories, and real processes."""

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection

from migrations_audit import services
from migrations_audit.models import Membership, Upstream
from tests.support.servers import (
    DASHBOARD_APP,
    PROJECT_ROOT,
    PROXY_APP,
    free_port,
    running,
    stop,
    uvicorn_args,
)

# The emulator and the servers tests start listen on loopback: upstreams may point there (attack
# tests narrow the list to prove refusals).
TEST_UPSTREAM_HOSTS = "api.anthropic.com,127.0.0.0/8"
TEST_WEBHOOK_HOSTS = "hooks.slack.com,127.0.0.0/8"


def pytest_configure(config):
    # Tests serve static files from the source folders: no collectstatic manifest needed.
    os.environ.setdefault("STATIC_MANIFEST", "0")
    os.environ["MIGRATION_AUDIT_UPSTREAM_HOSTS"] = TEST_UPSTREAM_HOSTS
    settings.MIGRATION_AUDIT_UPSTREAM_HOSTS = TEST_UPSTREAM_HOSTS.split(",")
    os.environ["MIGRATION_AUDIT_WEBHOOK_HOSTS"] = TEST_WEBHOOK_HOSTS
    settings.MIGRATION_AUDIT_WEBHOOK_HOSTS = TEST_WEBHOOK_HOSTS.split(",")
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


# alice administers team A, bob only views it, charlie is in team B.


@pytest.fixture
def alice(db):
    return get_user_model().objects.create_user("alice", "alice@example.com", "alice-password")


@pytest.fixture
def bob(db):
    return get_user_model().objects.create_user("bob", "bob@example.com", "bob-password")


@pytest.fixture
def charlie(db):
    return get_user_model().objects.create_user("charlie", "charlie@example.com", "charlie-password")


@pytest.fixture
def team_a(alice, bob):
    team = services.team_create(name="Team A", slug="team-a", admin=alice)
    Membership.objects.create(team=team, user=bob, role=Membership.Role.VIEWER)
    return team


@pytest.fixture
def team_b(charlie):
    return services.team_create(name="Team B", slug="team-b", admin=charlie)


@pytest.fixture
def upstream_a(team_a):
    return services.upstream_create(
        team=team_a,
        name="Anthropic",
        slug="anthropic",
        base_url="http://127.0.0.1:9",
        baseline_version="2023-06-01",
        target_version="2026-10-21",
        replay_key="sk-ant-replay-secret",
    )


@pytest.fixture
def upstream_b(team_b):
    return services.upstream_create(team=team_b, name="Other", slug="other", base_url="http://127.0.0.1:9")


def database_url_for_subprocess() -> str:
    """DATABASE_URL that points a child process at the test database this test run uses."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return (
        f"postgres://{user}{password}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"
    )


def child_env(**extra) -> dict:
    """Environment for a child process of the product that shares this test run's DB and broker."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url_for_subprocess(),
        "SECRET_KEY": settings.SECRET_KEY,
        "STATIC_MANIFEST": "0",
        "MIGRATION_AUDIT_UPSTREAM_HOSTS": TEST_UPSTREAM_HOSTS,
        "MIGRATION_AUDIT_WEBHOOK_HOSTS": TEST_WEBHOOK_HOSTS,
    }
    env.update({key: str(value) for key, value in extra.items()})
    return env


class WorkerProcess:
    """A real `celery worker` process over the configured broker, on the test database."""

    def __init__(self, tmp_path: Path, *, concurrency: int = 2, env: dict | None = None):
        self.log_path = tmp_path / f"worker-{uuid.uuid4().hex[:8]}.log"
        self.name = f"test-{uuid.uuid4().hex[:8]}@%h"
        self.concurrency = concurrency
        self.extra_env = env or {}
        self.process = None

    def start(self, *, timeout: float = 60) -> "WorkerProcess":
        log = open(self.log_path, "w")  # noqa: SIM115 - the child writes it until stopped
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "dashboard",
                "worker",
                "--loglevel",
                "INFO",
                "--concurrency",
                str(self.concurrency),
                "--without-mingle",
                "--without-gossip",
                "--hostname",
                self.name,
            ],
            cwd=PROJECT_ROOT,
            env=child_env(**self.extra_env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.log_path.read_text()}")
            if "ready." in self.log_path.read_text():
                return self
            time.sleep(0.2)
        raise TimeoutError(f"worker not ready in {timeout}s:\n{self.log_path.read_text()}")

    def kill(self) -> None:
        """SIGKILL the whole process group, as a crash would."""
        import signal

        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process, timeout=20)

    @property
    def log(self) -> str:
        return self.log_path.read_text()


def beat_start(tmp_path: Path, **env) -> subprocess.Popen:
    """A real `celery beat` on the test database and broker, logging to tmp_path/beat.log."""
    log = open(tmp_path / "beat.log", "w")  # noqa: SIM115 - the child writes it until stopped
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "dashboard",
            "beat",
            "--loglevel",
            "INFO",
            "--schedule",
            str(tmp_path / "beat-schedule"),
        ],
        cwd=PROJECT_ROOT,
        env=child_env(**env),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def purge_broker() -> None:
    from dashboard.celery import app

    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge("celery")


@pytest.fixture
def celery_worker(transactional_db, tmp_path):
    """Start a real worker (on the test database and the configured broker) for one test."""
    purge_broker()
    worker = WorkerProcess(tmp_path).start()
    yield worker
    worker.stop()


@pytest.fixture
def worker_factory(transactional_db, tmp_path):
    """Start any number of real workers; all are stopped when the test ends."""
    purge_broker()
    workers = []

    def start(**options) -> WorkerProcess:
        worker = WorkerProcess(tmp_path, **options).start()
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


# The whole product as real processes: the emulator, the dashboard, the proxy and a Celery worker.


@pytest.fixture(scope="module")
def emulator():
    port = free_port()
    with running(
        ["-m", "migrations_audit.emulator", "--port", str(port)],
        ready_url=f"http://127.0.0.1:{port}/v1/models",
    ):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def stack(transactional_db, emulator, celery_worker, tmp_path):
    """The dashboard/API server, the recording proxy (its own port; default upstream "anthropic") and
    a worker, as the Procfile runs them. Their output goes to files listed under "logs", for tests
    that read what the product logged."""
    port, proxy_port = free_port(), free_port()
    env = child_env(
        MIGRATION_AUDIT_DEFAULT_UPSTREAM="anthropic",
        MIGRATION_AUDIT_PROXY_URL=f"http://127.0.0.1:{proxy_port}",
    )
    logs = [tmp_path / "web.log", tmp_path / "proxy.log", celery_worker.log_path]
    with (
        open(logs[0], "w") as web_log,
        open(logs[1], "w") as proxy_log,
        running(
            uvicorn_args(DASHBOARD_APP, port),
            env=env,
            log=web_log,
            ready_url=f"http://127.0.0.1:{port}/healthz",
        ),
        running(
            uvicorn_args(PROXY_APP, proxy_port),
            env=env,
            log=proxy_log,
            ready_url=f"http://127.0.0.1:{proxy_port}/__audit/healthz",
        ),
    ):
        yield {
            "web": f"http://127.0.0.1:{port}",
            "proxy": f"http://127.0.0.1:{proxy_port}",
            "emulator": emulator,
            "logs": logs,
        }


@pytest.fixture
def product(stack, upstream_a):
    """The upstream `anthropic` on the emulator, behind the proxy (at /proxy/anthropic/ and, as the
    default upstream, at the root path), with a worker."""
    Upstream.objects.filter(pk=upstream_a.pk).update(
        base_url=stack["emulator"], rate_limit_rps=200, rate_limit_concurrency=16
    )
    upstream_a.refresh_from_db()
    return {**stack, "upstream": upstream_a, "prefix": f"{stack['proxy']}/proxy/{upstream_a.slug}"}


@pytest.fixture
def tasks_eager(monkeypatch):
    """Tasks queued during the test run at once, in the test's process (for tests that run the
    on-commit hooks with django_capture_on_commit_callbacks(execute=True)). Replay batches are not
    sent: they need an upstream and a worker (tests that replay start real ones), and run inline
    they would retry an absent upstream by queueing themselves again, recursively."""
    from dashboard.celery import app
    from migrations_audit.replay import batching

    monkeypatch.setattr(batching, "_send", lambda result_ids, countdown: None)
    before = (app.conf.task_always_eager, app.conf.task_eager_propagates)
    app.conf.task_always_eager = app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = before
