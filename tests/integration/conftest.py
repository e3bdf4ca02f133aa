"""The whole product as real processes: the emulator, the proxy listeners and a Celery worker."""

import pytest

from migrations_audit.models import Upstream
from tests.conftest import child_env
from tests.support.servers import free_port, running


@pytest.fixture(scope="module")
def emulator():
    port = free_port()
    with running(
        ["-m", "migrations_audit.emulator", "--port", str(port)],
        ready_url=f"http://127.0.0.1:{port}/v1/models",
    ):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def product(transactional_db, upstream_a, emulator, celery_worker):
    """The upstream on the emulator, both proxy listeners and a worker, ready for real clients."""
    Upstream.objects.filter(pk=upstream_a.pk).update(
        base_url=emulator, rate_limit_rps=200, rate_limit_concurrency=16
    )
    upstream_a.refresh_from_db()
    port, root_port = free_port(), free_port()
    env = child_env(MIGRATION_AUDIT_DEFAULT_UPSTREAM=upstream_a.slug)
    app = ["-m", "uvicorn", "--host", "127.0.0.1", "--no-access-log"]
    with (
        running(
            [*app, "dashboard.asgi:application", "--port", str(port)],
            env=env,
            ready_url=f"http://127.0.0.1:{port}/healthz",
        ),
        running(
            [*app, "dashboard.asgi:root_proxy_application", "--port", str(root_port)],
            env=env,
            ready_url=f"http://127.0.0.1:{root_port}/__audit/healthz",
        ),
    ):
        yield {
            "upstream": upstream_a,
            "web": f"http://127.0.0.1:{port}",
            "prefix": f"http://127.0.0.1:{port}/proxy/{upstream_a.slug}",
            "root": f"http://127.0.0.1:{root_port}",
            "emulator": emulator,
        }
