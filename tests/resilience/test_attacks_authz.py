"""Attacks on the web side with a team member's login (issue 16): a viewer writing through the API, a
forged cross-site POST to the session API, guessing passwords at the admin's login or from behind
the TLS proxy, a client name that is a spreadsheet formula, and query strings that crashed pages.

Over real HTTP (the live server on 127.0.0.1) where the attack is a request; through Django's test
client where it needs a client address other than 127.0.0.1."""

import csv
import io
import json
from datetime import UTC, datetime

import pytest
import requests
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.test import Client as Browser
from django.urls import reverse

from migrations_audit import services
from migrations_audit.capture.recording import CapturedExchange
from migrations_audit.capture.services import exchanges_record
from migrations_audit.models import (
    Client,
    DifferenceSignature,
    Exchange,
    Membership,
    ReplayRun,
    ReportDefinition,
)
from migrations_audit.reports import services as report_services
from tests.resilience.test_security import (
    csrf_client,
    database_state,
    objects,  # noqa: F401 - a fixture
    post_every_url,
    post_only,
)

RUN = {"upstream": "anthropic", "versions": ["2023-06-01", "2026-10-21"]}
LINE = json.dumps(
    {
        "method": "POST",
        "path": "/v1/messages",
        "started_at": "2026-11-20T10:00:00Z",
        "request_headers": {"anthropic-version": "2023-06-01"},
        "request_body": {"model": "m", "max_tokens": 1, "messages": []},
        "status": 200,
        "response_body": {"type": "message", "content": []},
    }
)


@pytest.fixture(autouse=True)
def fresh_limits():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def web(live_server):
    return live_server.url.replace("localhost", "127.0.0.1")


def signed_in(web: str, username: str) -> requests.Session:
    """A browser that signed in through the login form, as a person does: session and CSRF cookies."""
    browser = requests.Session()
    browser.get(f"{web}/accounts/login/").raise_for_status()
    response = browser.post(
        f"{web}/accounts/login/",
        data={
            "username": username,
            "password": f"{username}-password",
            "csrfmiddlewaretoken": browser.cookies["csrftoken"],
        },
        allow_redirects=False,
    )
    assert response.status_code == 302, response.text
    return browser


def start_run(web, browser=None, **headers) -> requests.Response:
    return (browser or requests).post(f"{web}/api/v1/runs", json=RUN, headers=headers)


def ingest(web, browser=None, **headers) -> requests.Response:
    return (browser or requests).post(
        f"{web}/api/v1/upstreams/anthropic/exchanges",
        data=LINE,
        headers={"Content-Type": "application/x-ndjson", **headers},
    )


# Item 5: roles apply to the API exactly as to the pages.


def test_a_viewer_cannot_start_a_run_or_ingest_through_the_api_with_a_session(web, upstream_a, alice, bob):
    viewer = signed_in(web, "bob")
    csrf = {"X-CSRFToken": viewer.cookies["csrftoken"]}
    refused = start_run(web, viewer, **csrf)
    assert refused.status_code == 403, refused.text
    assert "Viewers" in refused.json()["error"]
    assert ingest(web, viewer, **csrf).status_code == 403
    assert not ReplayRun.objects.exists() and not Exchange.objects.exists()
    # The same requests from the team's admin are what they look like: a line stored, a run started.
    admin = signed_in(web, "alice")
    csrf = {"X-CSRFToken": admin.cookies["csrftoken"]}
    assert ingest(web, admin, **csrf).json()["accepted"] == 1
    assert start_run(web, admin, **csrf).status_code == 201
    # Reading stays open to the viewer, as on the pages.
    run = ReplayRun.objects.get()
    assert viewer.get(f"{web}/api/v1/runs/{run.pk}").json()["id"] == run.pk


def test_a_token_acts_with_its_makers_role_in_the_team(web, upstream_a, alice, bob):
    """A token carries the role of the user who made it, as it is today: made by a viewer (who was a
    member then), or by an admin since demoted, it only reads. A token made by an operator (no maker,
    as `manage.py` or the admin make them) writes for its team."""
    _, by_viewer = services.api_token_create(team=upstream_a.team, name="bob's", created_by=bob)
    _, by_admin = services.api_token_create(team=upstream_a.team, name="alice's", created_by=alice)
    _, by_operator = services.api_token_create(team=upstream_a.team, name="ci")
    for token, allowed in ((by_viewer, False), (by_admin, True), (by_operator, True)):
        bearer = {"Authorization": f"Bearer {token}"}
        assert ingest(web, **bearer).status_code == (200 if allowed else 403), token[:10]
        assert start_run(web, **bearer).status_code == (201 if allowed else 403), token[:10]
    Membership.objects.filter(user=alice, team=upstream_a.team).update(role=Membership.Role.VIEWER)
    assert start_run(web, Authorization=f"Bearer {by_admin}").status_code == 403
    Membership.objects.filter(user=alice, team=upstream_a.team).delete()
    assert start_run(web, Authorization=f"Bearer {by_admin}").status_code == 403
    assert ReplayRun.objects.count() == 2 and Exchange.objects.count() == 1


def test_a_viewer_changes_nothing_anywhere(objects, alice, bob):  # noqa: F811 - objects is a fixture
    """bob (viewer of team A) POSTs every URL of team A's objects, pages and API, with a valid CSRF
    token: every view that writes answers 403, and not one row changed."""
    writes = post_only(objects, alice) | {
        "migrations_audit:api_runs",
        "migrations_audit:api_ingest",
        "migrations_audit:migrations",
        "migrations_audit:run_start",
        "migrations_audit:har_imports",
        "migrations_audit:report_edit",
        "migrations_audit:upstream_edit",
    }
    browser = csrf_client(bob)
    before = database_state()
    statuses = post_every_url(browser, objects)
    for name, status in statuses.items():
        if name in writes:
            assert status == 403, f"{name}: bob's POST got {status}"
        else:
            assert status in (200, 403, 405), f"{name}: bob's POST got {status}"
    assert database_state() == before


# Item 6: the session-authenticated API wants the CSRF token; a token caller does not.


def test_a_forged_cross_site_post_to_the_session_api_is_refused(web, upstream_a, alice):
    """What a page on another site can make a signed-in browser send: a `text/plain` form POST (no
    preflight) carrying the session cookie, and no CSRF token."""
    browser = signed_in(web, "alice")
    forged = {"Content-Type": "text/plain", "Origin": "http://evil.example"}
    refused = browser.post(f"{web}/api/v1/runs", data=json.dumps(RUN), headers=forged)
    assert refused.status_code == 403, refused.text
    assert "CSRF" in refused.json()["error"]
    assert browser.post(f"{web}/api/v1/runs", json=RUN).status_code == 403, "no token, no Origin"
    assert ingest(web, browser, **{"Content-Type": "text/plain"}).status_code == 403
    assert not ReplayRun.objects.exists() and not Exchange.objects.exists()
    # A program with the team's token needs no CSRF token: a browser never adds that header itself.
    _, token = services.api_token_create(team=upstream_a.team, name="ci")
    assert ingest(web, Authorization=f"Bearer {token}").status_code == 200
    assert start_run(web, Authorization=f"Bearer {token}").status_code == 201
    # Nor does the session with its CSRF token, as the pages send it.
    assert start_run(web, browser, **{"X-CSRFToken": browser.cookies["csrftoken"]}).status_code == 201


# Item 10: the admin's login has the same limit; the address is the proxy's header only if trusted.


def test_the_admin_login_is_rate_limited_like_ours(web, settings, db):
    settings.LOGIN_FAILURE_LIMIT = 3
    get_user_model().objects.create_superuser("root", "root@example.com", "root-password")
    browser = requests.Session()
    browser.get(f"{web}/admin/login/").raise_for_status()

    def attempt(password: str) -> requests.Response:
        data = {"username": "root", "password": password, "csrfmiddlewaretoken": browser.cookies["csrftoken"]}
        return browser.post(f"{web}/admin/login/", data=data, allow_redirects=False)

    first = attempt("root-password")
    assert first.status_code == 302, "the right password signs in before any failure"
    browser.cookies.clear()
    browser.get(f"{web}/admin/login/").raise_for_status()
    for _ in range(settings.LOGIN_FAILURE_LIMIT):
        assert attempt("guess").status_code == 200
    refused = attempt("root-password")
    assert refused.status_code == 429, "the right password too, once the limit is reached"
    assert "Too many failed attempts" in refused.text
    # One limit for both doors: the site's login refuses root as well.
    assert (
        browser.post(
            f"{web}/accounts/login/",
            data={
                "username": "root",
                "password": "root-password",
                "csrfmiddlewaretoken": browser.cookies["csrftoken"],
            },
        ).status_code
        == 429
    )


def guess(address: str, username: str, forwarded_for: str | None = None) -> int:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    return (
        Browser(REMOTE_ADDR=address)
        .post(reverse("login"), {"username": username, "password": "wrong"}, headers=headers)
        .status_code
    )


def sign_in(address: str, username: str, forwarded_for: str | None = None) -> int:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    return (
        Browser(REMOTE_ADDR=address)
        .post(reverse("login"), {"username": username, "password": f"{username}-password"}, headers=headers)
        .status_code
    )


def test_a_forwarded_for_header_is_ignored_unless_the_operator_trusts_it(settings, alice, bob):
    """No trusted proxy configured: the attacker's X-Forwarded-For neither gives each guess a fresh
    address nor puts the guesses on a colleague's address."""
    settings.LOGIN_FAILURE_LIMIT = 3
    for index in range(settings.LOGIN_FAILURE_LIMIT):
        assert guess("203.0.113.7", f"user{index}", forwarded_for=f"198.51.100.{index}") == 200
    assert guess("203.0.113.7", "user9", forwarded_for="198.51.100.99") == 429, "spoofing gave a fresh budget"
    assert sign_in("198.51.100.1", "alice") == 302, "the spoofed address was locked out"


def test_behind_the_tls_proxy_one_attacker_locks_out_only_themselves(settings, alice, bob):
    """Behind the README's TLS proxy every request comes from the proxy's address. With the proxy's
    header trusted, the limit keys on the address the proxy saw: the attacker's guesses lock out the
    attacker, whatever they write into the header themselves, and nobody else."""
    settings.LOGIN_FAILURE_LIMIT = 3
    settings.TRUSTED_PROXY_HEADER = "X-Forwarded-For"
    proxy = "10.0.0.2"
    for index in range(settings.LOGIN_FAILURE_LIMIT):
        # The attacker writes a fresh address into the header; the proxy appends the real one.
        assert guess(proxy, f"user{index}", forwarded_for=f"192.0.2.{index}, 203.0.113.7") == 200
    assert guess(proxy, "user9", forwarded_for="192.0.2.99, 203.0.113.7") == 429
    assert sign_in(proxy, "alice", forwarded_for="198.51.100.2") == 302, "a colleague was locked out"
    # Two proxies in a row: the address the outer one saw is the second from the right.
    settings.TRUSTED_PROXY_COUNT = 2
    assert guess(proxy, "user9", forwarded_for="192.0.2.99, 203.0.113.7, 10.0.0.1") == 429
    assert sign_in(proxy, "bob", forwarded_for="198.51.100.3, 10.0.0.1") == 302


# Item 12: a client name that is a formula stays text in every CSV export.


# Declared by a client in its X-Audit-Client header (the proxy strips surrounding whitespace)...
DECLARED = ['=HYPERLINK("http://evil.example","x")', "+1+1", "-2+3", "@SUM(A1)"]
# ...or given as a label by a user.
LABELS = ["\t=1+1", "\r=1+1"]


def test_a_formula_in_a_client_name_is_text_in_the_csv_report(web, upstream_a, alice):
    exchanges_record(
        upstream=upstream_a,
        source="proxy",
        captured=[
            CapturedExchange(
                method="POST",
                path="/v1/messages",
                request_headers={"x-audit-client": name, "anthropic-version": "2023-06-01"},
                request_body=b'{"model": "m"}',
                started_at=datetime(2026, 11, 20, tzinfo=UTC),
                status=200,
            )
            for name in DECLARED
        ],
    )
    for index, label in enumerate(LABELS):
        Client.objects.create(upstream=upstream_a, kind="declared", identity=f"labelled{index}", label=label)
    for index, client in enumerate(upstream_a.clients.order_by("identity")):
        signature = DifferenceSignature.objects.create(
            upstream=upstream_a,
            signature=f"{index:064d}",
            version_from="2023-06-01",
            version_to="2026-10-21",
            endpoint="POST /v1/messages",
            kind="field_removed",
            path=f"/x{index}",
            classification="breaking",
            count=1,
            exchanges=1,
        )
        signature.clients.add(client)
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
    download = signed_in(web, "alice").get(f"{web}/reports/snapshots/{snapshot.pk}.csv")
    assert download.status_code == 200 and download.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(download.text, newline="")))
    cells = sorted(row["clients"] for row in rows if row["section"] == "replay")
    assert cells == sorted("'" + name for name in DECLARED + LABELS)
    dangerous = tuple("=+-@\t\r")
    assert not [cell for row in rows for cell in row.values() if cell.startswith(dangerous)]


# Item 15: a bad filter value is a 400 with a message, never a 500.


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"since": "2026-13-45"}, "must be a date"),
        ({"since": "2026-13-45T10:00"}, "must be a date"),
        ({"until": "0001-01-01T00:00:00+05:00"}, "must be a date"),
        ({"until": "9999-12-31T23:00:00-05:00"}, "must be a date"),
        ({"client": "99999999999999999999"}, "Client must be chosen"),
        ({"client": "²"}, "Client must be chosen"),
        ({"client": "abc"}, "Client must be chosen"),
        ({"status": "²²²"}, "Status must be a code"),
        ({"after": "2026-13-45T10:00|3"}, "page link is broken"),
        ({"after": "2026-11-01T00:00:00+00:00|99999999999999999999"}, "page link is broken"),
        ({"sort": "slowest", "after": "1e999|3"}, "page link is broken"),
    ],
)
def test_a_bad_filter_value_is_a_400_with_a_message(web, upstream_a, alice, query, message):
    browser = signed_in(web, "alice")
    page = browser.get(f"{web}/u/{upstream_a.slug}/traffic/", params=query)
    assert page.status_code == 400, query
    assert message in page.text and "<h1>Traffic</h1>" in page.text
    # htmx swaps no 4xx answer into the page: its partial says the same in place of the results.
    partial = browser.get(f"{web}/u/{upstream_a.slug}/traffic/", params=query, headers={"HX-Request": "true"})
    assert partial.status_code == 200 and message in partial.text and "<h1>" not in partial.text
