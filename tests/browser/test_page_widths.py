"""Every main page fits a 1400 px window on demo-like data: no horizontal scroll. Each page leaves a
screenshot in tests/browser/screenshots/ (widths-<name>.png) to look at."""

from datetime import UTC, date, datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from migrations_audit.capture.recording import CapturedExchange
from migrations_audit.capture.services import exchanges_record
from migrations_audit.demo_traffic import demo_traffic_record
from migrations_audit.models import (
    ChangelogRule,
    DifferenceSignature,
    Exchange,
    HarImport,
    Migration,
    ReplayRun,
    ReportDefinition,
)
from migrations_audit.reports import services as report_services
from migrations_audit.tracking.services import migration_refresh
from tests.conftest import child_env
from tests.support.servers import DASHBOARD_APP, free_port, running, uvicorn_args

pytestmark = pytest.mark.browser

WIDTH = 1400


@pytest.fixture
def web(transactional_db, tmp_path):
    """The dashboard as production serves it: uvicorn in its own process, on a free loopback port."""
    port = free_port()
    with (
        open(tmp_path / "web.log", "w") as log,
        running(
            uvicorn_args(DASHBOARD_APP, port),
            env=child_env(),
            log=log,
            ready_url=f"http://127.0.0.1:{port}/healthz",
        ),
    ):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def page(chromium, web):
    context = chromium.new_context(viewport={"width": WIDTH, "height": 900}, base_url=web)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def demo(upstream_a, alice):
    """The demo's traffic, a finished run with long differences, a migration, a report and an import."""
    demo_traffic_record(upstream=upstream_a)
    # Long names without spaces, as real traffic has them: tables must wrap or cut, never widen the page.
    exchanges_record(
        upstream=upstream_a,
        source="proxy",
        captured=[
            CapturedExchange(
                method="POST",
                path="/v1/messages/batches/msgbatch_01HkcTjaV5uDC8jWR4ZsDV8d_with_a_long_identifier/results",
                request_headers={
                    "x-audit-client": "nightly-summariser-for-the-enterprise-customer-success-dashboards-v2",
                    "anthropic-version": "2023-06-01",
                },
                request_body=b'{"model": "claude-3-5-sonnet-20241022"}',
                started_at=datetime(2026, 11, 20, tzinfo=UTC),
                status=200,
                response_body=b'{"id": "' + b"x" * 400 + b'"}',
            )
            for _ in range(60)
        ],
    )
    run = ReplayRun.objects.create(
        upstream=upstream_a,
        versions=["2023-06-01", "2026-10-21"],
        status=ReplayRun.Status.COMPLETED,
        created_by=alice,
        finished_at=datetime(2026, 11, 2, tzinfo=UTC),
    )
    clients = list(upstream_a.clients.all())
    rule = ChangelogRule.objects.filter(upstream=upstream_a).first()
    for index, path in enumerate(
        [
            "/content/0/citations/0/cited_text_with_a_rather_long_name_that_goes_on",
            "header:anthropic-ratelimit-output-tokens-reset-at-a-long-header-name",
            "/usage/cache_creation/ephemeral_1h_input_tokens",
        ]
    ):
        signature = DifferenceSignature.objects.create(
            upstream=upstream_a,
            signature=f"{index}" * 64,
            version_from="2023-06-01",
            version_to="2026-10-21",
            endpoint="POST /v1/messages",
            kind="value_changed",
            path=path,
            classification="breaking",
            rule=rule if index == 0 else None,
            count=12 + index,
            exchanges=4,
            example=Exchange.objects.first(),
        )
        signature.clients.set(clients)
    migration = Migration.objects.create(
        upstream=upstream_a,
        name="Move to 2026-10-21",
        target_version="2026-10-21",
        deadline=date(2026, 12, 31),
    )
    migration_refresh(migration=migration)
    definition = report_services.definition_save(
        definition=ReportDefinition(
            team=upstream_a.team,
            upstream=upstream_a,
            name="Weekly compatibility",
            version_from="2023-06-01",
            version_to="2026-10-21",
            interval_seconds=86400,
            recipients="team@example.com",
        )
    )
    snapshot = report_services.snapshot_create(definition=definition)
    job = HarImport.objects.create(
        upstream=upstream_a,
        filename="a-browser-export-with-a-long-name.har",
        stored_path="/nonexistent",
        state=HarImport.State.FAILED,
        error="this is not a HAR file (HAR is JSON exported by a browser or a proxy): it is not valid JSON; "
        "nothing was imported",
    )
    queued = HarImport.objects.create(upstream=upstream_a, filename="waiting.har", stored_path="/nonexistent")
    waiting = report_services.definition_save(
        definition=ReportDefinition(
            team=upstream_a.team,
            upstream=upstream_a,
            name="Run now, waiting",
            version_from="2023-06-01",
            version_to="2026-10-21",
            interval_seconds=3600,
        )
    )
    ReportDefinition.objects.filter(pk=waiting.pk).update(last_run_at=timezone.now())
    big = Exchange.objects.order_by("pk").last()
    Exchange.objects.filter(pk=big.pk).update(response_body=b'{"text": "' + b"long line " * 300_000 + b'"}')
    slug = upstream_a.slug
    return {
        "exchange-big-body": reverse("migrations_audit:exchange", args=[slug, big.pk]),
        "har-import-queued": reverse("migrations_audit:har_import", args=[slug, queued.pk]),
        "report-waiting": reverse("migrations_audit:report", args=[waiting.pk]),
        "overview": reverse("migrations_audit:overview", args=[slug]),
        "traffic": reverse("migrations_audit:traffic", args=[slug]),
        "exchange": reverse("migrations_audit:exchange", args=[slug, Exchange.objects.first().pk]),
        "differences": reverse("migrations_audit:differences", args=[slug]),
        "clients": reverse("migrations_audit:clients", args=[slug]),
        "client": reverse("migrations_audit:client", args=[slug, clients[0].pk]),
        "migrations": reverse("migrations_audit:migrations", args=[slug]),
        "migration-board": reverse("migrations_audit:migration", args=[slug, migration.pk]),
        "runs": reverse("migrations_audit:runs", args=[slug]),
        "run": reverse("migrations_audit:run", args=[slug, run.pk]),
        "reports": reverse("migrations_audit:reports"),
        "report": reverse("migrations_audit:report", args=[definition.pk]),
        "snapshot": reverse("migrations_audit:report_snapshot", args=[snapshot.pk]),
        "settings": reverse("migrations_audit:settings"),
        "upstream-edit": reverse("migrations_audit:upstream_edit", args=[slug]),
        "rules": reverse("migrations_audit:rules", args=[slug]),
        "har-imports": reverse("migrations_audit:har_imports", args=[slug]),
        "har-import": reverse("migrations_audit:har_import", args=[slug, job.pk]),
    }


def test_every_main_page_fits_1400_px(page, screenshot_dir, demo):
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("alice-password")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()
    too_wide = {}
    for name, url in demo.items():
        response = page.goto(url)
        assert response.status == 200, f"{name}: {response.status}"
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(screenshot_dir / f"widths-{name}.png"), full_page=True)
        width = page.evaluate("document.documentElement.scrollWidth")
        if width > WIDTH:
            too_wide[name] = width
    assert too_wide == {}, f"pages wider than {WIDTH} px: {too_wide}"


@pytest.fixture
def screenshot_dir():
    from tests.browser.conftest import SCREENSHOTS

    SCREENSHOTS.mkdir(exist_ok=True)
    return SCREENSHOTS
