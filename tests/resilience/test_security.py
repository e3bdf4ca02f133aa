"""Access control on every URL, CSRF on every form, no open proxy, and production settings."""

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from migrations_audit import services
from migrations_audit.capture.proxy import upstream_url
from migrations_audit.capture.recording import CapturedExchange
from migrations_audit.capture.services import exchanges_record
from migrations_audit.diff.services import request_findings_check
from migrations_audit.models import (
    Acknowledgement,
    DifferenceSignature,
    Exchange,
    HarImport,
    Migration,
    ReplayRun,
    ReportDefinition,
)
from migrations_audit.reports import services as report_services
from migrations_audit.tracking.services import migration_refresh
from tests.support.servers import PROJECT_ROOT


def url_patterns(resolver=None, prefix=""):
    resolver = resolver or get_resolver()
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            if pattern.namespace == "admin":
                continue
            yield from url_patterns(pattern, f"{prefix}{pattern.namespace}:" if pattern.namespace else prefix)
        elif isinstance(pattern, URLPattern) and pattern.name:
            yield f"{prefix}{pattern.name}", pattern


@pytest.fixture
def objects(upstream_a, alice):
    """One object of each kind, all belonging to team A."""
    recorded = exchanges_record(
        upstream=upstream_a,
        source="proxy",
        captured=[
            CapturedExchange(
                method="POST",
                path="/v1/messages",
                request_headers={"x-audit-client": "svc", "anthropic-version": "2023-06-01"},
                request_body=b'{"temperature": 1}',
                started_at=datetime(2026, 11, 1, tzinfo=UTC),
                status=200,
            )
        ],
    )
    # What the request_check task does once the batch commits.
    request_findings_check(exchange_ids=recorded.exchange_ids)
    exchange = Exchange.objects.get()
    run = ReplayRun.objects.create(upstream=upstream_a, versions=["2023-06-01", "2026-10-21"])
    signature = DifferenceSignature.objects.create(
        upstream=upstream_a,
        signature="s" * 64,
        version_from="a",
        version_to="b",
        endpoint="e",
        kind="k",
        path="/p",
        classification="breaking",
        count=1,
        exchanges=1,
    )
    migration = Migration.objects.create(
        upstream=upstream_a, name="m", target_version="2026-10-21", deadline=date(2026, 12, 31)
    )
    migration_refresh(migration=migration)
    definition = report_services.definition_save(
        definition=ReportDefinition(
            team=upstream_a.team,
            upstream=upstream_a,
            name="r",
            version_from="2023-06-01",
            version_to="2026-10-21",
            interval_seconds=3600,
        )
    )
    snapshot = report_services.snapshot_create(definition=definition)
    job = HarImport.objects.create(upstream=upstream_a, filename="x.har", stored_path="/nonexistent")
    token, _ = services.api_token_create(team=upstream_a.team, name="t")
    acknowledgement = Acknowledgement.objects.create(
        upstream=upstream_a, signature=signature.signature, finding="difference", title="t", reason="r"
    )
    return {
        "slug": upstream_a.slug,
        "exchange_id": exchange.pk,
        "run_id": run.pk,
        "signature_id": signature.pk,
        "client_id": exchange.client_id,
        "migration_id": migration.pk,
        "definition_id": definition.pk,
        "snapshot_id": snapshot.pk,
        "job_id": job.pk,
        "team_slug": upstream_a.team.slug,
        "token_id": token.pk,
        "acknowledgement_id": acknowledgement.pk,
        "fmt": "json",
    }


def team_urls(objects):
    for name, pattern in url_patterns():
        keys = list(pattern.pattern.converters)
        if name in ("login", "logout", "migrations_audit:health") or not keys:
            continue
        yield name, reverse(name, kwargs={key: objects[key] for key in keys})


def database_state() -> dict:
    """Every row of the product's tables and of the users, to show that a request changed nothing."""
    models = [*apps.get_app_config("migrations_audit").get_models(), get_user_model()]
    return {model._meta.label: list(model.objects.order_by("pk").values()) for model in models}


def csrf_client(user) -> Client:
    """A browser signed in as `user` that enforces CSRF and sends a valid token with every request, so
    a refusal comes from the view's checks and never from a missing token."""
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    browser.get(reverse("migrations_audit:settings"))  # sets the CSRF cookie
    browser.defaults["HTTP_X_CSRFTOKEN"] = browser.cookies["csrftoken"].value
    return browser


def post_every_url(browser, objects) -> dict[str, int]:
    """POST every URL that names objects of team A, and the run API with a run of team A's upstream:
    the status of each, by URL name."""
    statuses = {
        name: browser.post(url, {"name": "x", "team": "1", "versions": ["2023-06-01"]}).status_code
        for name, url in team_urls(objects)
    }
    statuses["migrations_audit:api_runs"] = browser.post(
        reverse("migrations_audit:api_runs"),
        json.dumps({"upstream": objects["slug"], "versions": ["2023-06-01", "2026-10-21"]}),
        content_type="application/json",
    ).status_code
    return statuses


def post_only(objects, user) -> set[str]:
    """The URL names that take only a POST (a GET is 405): the views that change something."""
    browser = Client()
    browser.force_login(user)
    return {name for name, url in team_urls(objects) if browser.get(url).status_code == 405}


def test_every_object_url_is_404_for_another_team_and_allowed_for_its_own(objects, alice, charlie):
    checked = 0
    own, other = Client(), Client()
    own.force_login(alice)
    other.force_login(charlie)
    for name, url in team_urls(objects):
        outsider = other.get(url)
        # A POST-only view answers 405 to a GET before it looks anything up: the POST walk below checks it.
        assert outsider.status_code in (404, 405), f"{name}: charlie got {outsider.status_code} for {url}"
        insider = own.get(url)
        assert insider.status_code in (200, 302, 405), f"{name}: alice got {insider.status_code} for {url}"
        checked += 1
    assert checked >= 20


def test_another_team_changes_nothing_by_posting_every_url(objects, alice, charlie):
    """charlie POSTs every URL of team A's objects with a valid CSRF token: each is 404 (or 405 where
    the view takes no POST), the POST-only views (run cancel and resume, token create and revoke,
    report run...) all 404, and not one row changed."""
    writes = post_only(objects, alice)
    assert {
        "migrations_audit:run_cancel",
        "migrations_audit:run_resume",
        "migrations_audit:token_create",
        "migrations_audit:token_revoke",
        "migrations_audit:report_run",
        "migrations_audit:client_claim",
        "migrations_audit:migration_close",
    } <= writes
    browser = csrf_client(charlie)
    before = database_state()
    statuses = post_every_url(browser, objects)
    for name, status in statuses.items():
        assert status in (404, 405), f"{name}: charlie's POST got {status}"
        assert status == 404 or name not in writes, f"{name}: charlie's POST got {status}"
    assert database_state() == before


def test_every_api_endpoint_wants_credentials(objects, client):
    for name, url in [
        ("api_run", reverse("migrations_audit:api_run", args=[objects["run_id"]])),
        ("api_runs", reverse("migrations_audit:api_runs")),
        ("api_ingest", reverse("migrations_audit:api_ingest", args=[objects["slug"]])),
        ("api_migration", reverse("migrations_audit:api_migration", args=[objects["migration_id"]])),
        ("api_acknowledgements", reverse("migrations_audit:api_acknowledgements", args=[objects["slug"]])),
    ]:
        assert client.get(url).status_code in (401, 405), name
        assert client.post(url, b"{}", content_type="application/json").status_code in (401, 405), name


def test_forms_refuse_posts_without_a_csrf_token(objects, alice):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(alice)
    posts = [
        reverse("migrations_audit:run_start", args=[objects["slug"]]),
        reverse("migrations_audit:run_cancel", args=[objects["slug"], objects["run_id"]]),
        reverse("migrations_audit:token_create", args=[objects["team_slug"]]),
        reverse("migrations_audit:report_run", args=[objects["definition_id"]]),
        reverse("migrations_audit:upstream_new"),
        reverse("migrations_audit:har_imports", args=[objects["slug"]]),
        reverse("migrations_audit:client_claim", args=[objects["slug"], objects["client_id"]]),
        reverse("migrations_audit:acknowledgement_new", args=[objects["slug"]]),
        reverse(
            "migrations_audit:acknowledgement_revoke", args=[objects["slug"], objects["acknowledgement_id"]]
        ),
        reverse("migrations_audit:api_acknowledgements", args=[objects["slug"]]),
        reverse("migrations_audit:report_test_delivery", args=[objects["definition_id"]]),
    ]
    for url in posts:
        assert strict.post(url, {}).status_code == 403, url


@pytest.mark.parametrize(
    "path",
    [
        "//evil.example/x",
        "/\\\\evil.example/x",
        "@evil.example/x",
        "/v1/../../x",
        "/v1/messages?x=http://evil",
    ],
)
def test_the_proxy_never_leaves_the_upstream(path):
    url = upstream_url("http://127.0.0.1:8100", path, "")
    assert url is None or url.startswith("http://127.0.0.1:8100/")


def test_deploy_checks_pass_with_production_settings():
    env = {
        **{name: value for name, value in os.environ.items() if name != "DJANGO_ALLOW_ASYNC_UNSAFE"},
        "DEBUG": "false",
        "SECRET_KEY": "x" * 20 + "production-secret-key-for-checks-0123456789",
        "ALLOWED_HOSTS": "audit.example.com",
        "SECURE_SSL_REDIRECT": "true",
        "SECURE_COOKIES": "true",
        "SECURE_HSTS_SECONDS": "31536000",
        "EMAIL_HOST": "smtp.example.com",
        "DJANGO_SETTINGS_MODULE": "dashboard.settings",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
