"""The release gate a team runs itself: acknowledgements by role, expiry, per-client request
findings, gate levels, the ignore file, exit codes, JUnit and GitHub output, and the trend."""

import io
import json
import re
import subprocess
import sys
from datetime import timedelta
from xml.etree import ElementTree

import jsonschema
import pytest
from django.core.management import CommandError, call_command
from django.test import Client as HttpClient
from django.urls import reverse
from django.utils import timezone

from migrations_audit import services as core_services
from migrations_audit.models import Acknowledgement, AcknowledgementEvent, ChangelogRule, DifferenceSignature
from migrations_audit.reports import services as report_services
from migrations_audit.reports.acknowledgements import (
    AcknowledgementError,
    acknowledgement_create,
    acknowledgements_expire,
)
from migrations_audit.reports.build import report_payload
from migrations_audit.reports.findings import request_signature
from tests.conftest import child_env
from tests.reports.test_reports import SCHEMA, definition, record, replayed, signature  # noqa: F401
from tests.support.servers import PROJECT_ROOT

BREAKING = "a1" * 32
UNEXPLAINED_ADDITIVE = "b2" * 32
EXPLAINED_ADDITIVE = "c3" * 32


def gate(*args) -> int:
    """compat_report in this process: its exit status (a usage or data error raises CommandError)."""
    with pytest.raises(SystemExit) as exit_status:
        call_command("compat_report", "--upstream", "anthropic", *args, stdout=io.StringIO())
    return exit_status.value.code


def gate_output(*args, tmp_path) -> tuple[int, str]:
    output = tmp_path / "out"
    code = gate(*args, "--output", str(output))
    return code, output.read_text()


@pytest.fixture
def breaking(upstream_a):
    replayed(upstream_a)
    return signature(upstream_a, key=BREAKING, path="/exception")


def acknowledge_on_page(client, upstream, key, **fields):
    return client.post(
        reverse("migrations_audit:acknowledgement_new", args=[upstream.slug]),
        {"signature": key, "reason": "the SDK upgrade handles it", **fields},
        headers={"HX-Request": "true"},
    )


def test_alice_acknowledges_on_the_finding_page_and_the_gate_passes(client, alice, upstream_a, breaking):
    assert gate() == 1
    client.force_login(alice)
    page = client.get(reverse("migrations_audit:difference_examples", args=[upstream_a.slug, breaking.pk]))
    assert page.status_code == 200 and b'name="reason"' in page.content
    expires = (timezone.localdate() + timedelta(days=30)).isoformat()
    response = acknowledge_on_page(client, upstream_a, BREAKING, expires_on=expires)
    assert response.status_code == 200
    assert b"acknowledged" in response.content and b"Revoke" in response.content
    assert gate() == 0
    payload = report_payload(upstream=upstream_a, version_from="2023-06-01", version_to="2026-10-21")
    jsonschema.validate(payload, SCHEMA)
    assert payload["differences"][0]["acknowledgement"]["by"] == "alice"
    assert payload["gate"]["passed"] and payload["summary"]["blocking"] == 0

    listing = client.get(reverse("migrations_audit:acknowledgements", args=[upstream_a.slug]))
    assert listing.status_code == 200 and b"the SDK upgrade handles it" in listing.content
    acknowledgement = Acknowledgement.objects.get()
    revoked = client.post(
        reverse("migrations_audit:acknowledgement_revoke", args=[upstream_a.slug, acknowledgement.pk]),
        {"reason": "the SDK upgrade slipped"},
    )
    assert revoked.status_code == 302
    assert gate() == 1
    trail = list(AcknowledgementEvent.objects.values_list("action", "actor_name", "via", "reason"))
    assert trail == [
        ("created", "alice", "page", "the SDK upgrade handles it"),
        ("revoked", "alice", "page", "the SDK upgrade slipped"),
    ]


def test_bob_the_viewer_cannot_and_charlie_of_another_team_sees_nothing(
    client, bob, charlie, upstream_a, breaking
):
    acknowledgement = acknowledgement_create(
        upstream=upstream_a, signature=BREAKING, reason="known", user=None, via="page"
    )
    client.force_login(bob)
    assert client.get(reverse("migrations_audit:acknowledgements", args=[upstream_a.slug])).status_code == 200
    page = client.get(reverse("migrations_audit:difference_examples", args=[upstream_a.slug, breaking.pk]))
    assert b"Revoke" not in page.content
    assert acknowledge_on_page(client, upstream_a, BREAKING).status_code == 403
    revoke = reverse("migrations_audit:acknowledgement_revoke", args=[upstream_a.slug, acknowledgement.pk])
    assert client.post(revoke, {"reason": "no"}).status_code == 403
    api = reverse("migrations_audit:api_acknowledgements", args=[upstream_a.slug])
    body = json.dumps({"signature": BREAKING, "reason": "mine"})
    assert client.post(api, body, content_type="application/json").status_code == 403

    client.force_login(charlie)
    assert client.get(reverse("migrations_audit:acknowledgements", args=[upstream_a.slug])).status_code == 404
    assert acknowledge_on_page(client, upstream_a, BREAKING).status_code == 404
    assert client.post(revoke, {"reason": "no"}).status_code == 404
    assert client.get(api).status_code == 404
    assert client.post(api, body, content_type="application/json").status_code == 404
    api_revoke = reverse(
        "migrations_audit:api_acknowledgement_revoke", args=[upstream_a.slug, acknowledgement.pk]
    )
    assert client.post(api_revoke, "{}", content_type="application/json").status_code == 404
    assert Acknowledgement.objects.get().state == "active"
    assert AcknowledgementEvent.objects.count() == 1


def test_the_api_acknowledges_with_a_session_and_its_csrf_token_never_with_a_token(
    alice, upstream_a, breaking
):
    browser = HttpClient(enforce_csrf_checks=True)
    browser.force_login(alice)
    api = reverse("migrations_audit:api_acknowledgements", args=[upstream_a.slug])
    body = json.dumps({"signature": BREAKING, "reason": "ships behind a flag", "expires_on": "2099-01-01"})
    assert browser.post(api, body, content_type="text/plain").status_code == 403  # no CSRF token
    browser.get(reverse("migrations_audit:acknowledgements", args=[upstream_a.slug]))
    csrf = browser.cookies["csrftoken"].value
    created = browser.post(api, body, content_type="application/json", headers={"X-CSRFToken": csrf})
    assert created.status_code == 201, created.content
    assert created.json()["created_by"] == "alice" and created.json()["expires_on"] == "2099-01-01"
    assert gate() == 0

    _, token = core_services.api_token_create(team=upstream_a.team, name="ci", created_by=alice)
    bearer = {"Authorization": f"Bearer {token}"}
    listed = HttpClient().get(api, headers=bearer)
    assert listed.status_code == 200 and listed.json()["acknowledgements"][0]["events"][0]["by"] == "alice"
    revoke = reverse(
        "migrations_audit:api_acknowledgement_revoke", args=[upstream_a.slug, created.json()["id"]]
    )
    refused = HttpClient().post(
        revoke, json.dumps({"reason": "x"}), content_type="application/json", headers=bearer
    )
    assert refused.status_code == 403
    revoked = browser.post(
        revoke,
        json.dumps({"reason": "flag removed"}),
        content_type="application/json",
        headers={"X-CSRFToken": csrf},
    )
    assert revoked.status_code == 200 and revoked.json()["state"] == "revoked"
    assert [e["action"] for e in revoked.json()["events"]] == ["created", "revoked"]
    assert gate() == 1


def test_an_expired_acknowledgement_fails_the_gate_again(client, alice, upstream_a, breaking):
    acknowledgement = acknowledgement_create(
        upstream=upstream_a,
        signature=BREAKING,
        reason="until the client ships",
        expires_on=timezone.localdate(),
        user=alice,
        via="page",
    )
    assert gate() == 0  # it counts through its expiry day
    Acknowledgement.objects.filter(pk=acknowledgement.pk).update(
        expires_on=timezone.localdate() - timedelta(days=1)
    )  # a day later
    assert gate() == 1
    acknowledgement.refresh_from_db()
    assert acknowledgement.state == "expired"
    assert acknowledgements_expire() == 0  # recorded once
    assert list(acknowledgement.events.values_list("action", "actor_name")) == [
        ("created", "alice"),
        ("expired", "system"),
    ]
    with pytest.raises(AcknowledgementError, match="past"):
        acknowledgement_create(
            upstream=upstream_a,
            signature=BREAKING,
            reason="again",
            expires_on=timezone.localdate() - timedelta(days=1),
            user=alice,
            via="page",
        )
    client.force_login(alice)
    assert acknowledge_on_page(client, upstream_a, BREAKING).status_code == 200  # a new one may be made
    assert gate() == 0


def test_a_rejected_request_is_acknowledged_per_client_never_globally(client, alice, upstream_a):
    replayed(upstream_a)
    record(upstream_a, {"model": "m", "temperature": 0.5}, client="checkout")
    record(upstream_a, {"model": "m", "top_k": 3}, client="search")
    rule_key = "sampling-parameters-removed"
    everyone = request_signature(version_to="2026-10-21", rule_key=rule_key, client_identity=None)
    checkout = request_signature(version_to="2026-10-21", rule_key=rule_key, client_identity="checkout")
    search = request_signature(version_to="2026-10-21", rule_key=rule_key, client_identity="search")
    payload = report_payload(upstream=upstream_a, version_from="2023-06-01", version_to="2026-10-21")
    jsonschema.validate(payload, SCHEMA)
    rule = payload["request_rules"][0]
    assert rule["signature"] == everyone
    assert {row["signature"] for row in rule["by_client"]} == {checkout, search}
    assert gate() == 1

    client.force_login(alice)
    deadline = (timezone.localdate() + timedelta(days=14)).isoformat()
    refused = acknowledge_on_page(client, upstream_a, everyone, expires_on=deadline)
    assert b"per client, never for everyone" in refused.content
    api = reverse("migrations_audit:api_acknowledgements", args=[upstream_a.slug])
    global_api = client.post(
        api,
        json.dumps({"signature": everyone, "reason": "all fine", "expires_on": deadline}),
        "application/json",
    )
    assert global_api.status_code == 400 and "per client" in global_api.json()["error"]
    no_deadline = acknowledge_on_page(client, upstream_a, checkout)
    assert b"until a date" in no_deadline.content
    assert not Acknowledgement.objects.exists()

    page = client.get(reverse("migrations_audit:acknowledgements", args=[upstream_a.slug]))
    assert f'id="ack-{checkout}"'.encode() in page.content and f'id="ack-{search}"'.encode() in page.content
    assert acknowledge_on_page(client, upstream_a, checkout, expires_on=deadline).status_code == 200
    assert gate() == 1  # search still sends what 2026-10-21 rejects
    by_rule = client.post(
        api,
        json.dumps(
            {
                "signature": everyone,
                "client": upstream_a.clients.get(identity="search").pk,
                "reason": "search moves next sprint",
                "expires_on": deadline,
            }
        ),
        "application/json",
    )
    assert by_rule.status_code == 201 and by_rule.json()["signature"] == search
    assert gate() == 0
    assert set(Acknowledgement.objects.values_list("client__identity", flat=True)) == {"checkout", "search"}


def test_gate_levels_and_the_ignore_file(upstream_a, tmp_path):
    replayed(upstream_a)
    rule = ChangelogRule.objects.filter(upstream=upstream_a, classification="additive").first()
    signature(upstream_a, key=UNEXPLAINED_ADDITIVE, path="/new_field", classification="additive")
    signature(upstream_a, key=EXPLAINED_ADDITIVE, path="/usage/x", classification="additive", rule=rule)
    assert rule is not None
    assert gate() == 0
    assert gate("--fail-on", "breaking") == 0
    assert gate("--fail-on", "unexplained") == 1
    assert gate("--fail-on", "any") == 1
    signature(upstream_a, key=BREAKING, path="/exception")
    assert gate() == 1

    ignore = tmp_path / "compat-ignore"
    ignore.write_text(
        "# our release policy\n"
        f"{BREAKING}  # the exception field: nobody reads it (PLAT-12)\n"
        "\n"
        f"  {UNEXPLAINED_ADDITIVE.upper()}   # a new field is harmless\n"
    )
    assert gate("--ignore", str(ignore)) == 0
    assert gate("--ignore", str(ignore), "--fail-on", "unexplained") == 0
    assert gate("--ignore", str(ignore), "--fail-on", "any") == 1
    code, text = gate_output("--ignore", str(ignore), "--format", "json", tmp_path=tmp_path)
    report = json.loads(text)
    jsonschema.validate(report, SCHEMA)
    assert code == 0 and sorted(report["gate"]["ignored"]) == sorted([BREAKING, UNEXPLAINED_ADDITIVE.lower()])

    record(upstream_a, {"model": "m", "temperature": 1}, client="checkout")
    everyone = request_signature(
        version_to="2026-10-21", rule_key="sampling-parameters-removed", client_identity=None
    )
    checkout = request_signature(
        version_to="2026-10-21", rule_key="sampling-parameters-removed", client_identity="checkout"
    )
    assert gate("--ignore", str(ignore)) == 1
    ignore.write_text(ignore.read_text() + f"{checkout} # checkout moves in March\n")
    assert gate("--ignore", str(ignore)) == 0
    ignore.write_text(ignore.read_text() + f"{everyone}\n")
    with pytest.raises(CommandError, match="per client") as refused:
        gate("--ignore", str(ignore))
    assert refused.value.returncode == 2
    ignore.write_text("not-a-signature # oops\n")
    with pytest.raises(CommandError, match="line 1") as malformed:
        gate("--ignore", str(ignore))
    assert malformed.value.returncode == 2


def test_junit_and_github_annotations_follow_their_formats(alice, upstream_a, tmp_path):
    replayed(upstream_a)
    signature(upstream_a, key=BREAKING, path="/exception")
    signature(upstream_a, key=UNEXPLAINED_ADDITIVE, path="/a,b:c", classification="additive")
    signature(upstream_a, key="d4" * 32, path="/stop_reason")
    acknowledgement_create(
        upstream=upstream_a, signature="d4" * 32, reason="known: fine", user=alice, via="api"
    )
    record(upstream_a, {"model": "m", "temperature": 1}, client="checkout")

    code, xml = gate_output("--format", "junit", tmp_path=tmp_path)
    assert code == 1
    root = ElementTree.fromstring(xml)
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert len(suites) == 1
    suite = suites[0]
    cases = suite.findall("testcase")
    assert len(cases) == 4 == int(suite.get("tests")) == int(root.get("tests"))
    failures = [case for case in cases if case.find("failure") is not None]
    skipped = [case for case in cases if case.find("skipped") is not None]
    assert len(failures) == 2 == int(suite.get("failures")) == int(root.get("failures"))
    assert len(skipped) == 1 == int(suite.get("skipped")) and suite.get("errors") == "0"
    assert all(case.get("classname") and case.get("name") for case in cases)
    assert all(len(case.findall("failure")) + len(case.findall("skipped")) <= 1 for case in cases)
    assert {case.get("classname") for case in failures} == {"anthropic.difference", "anthropic.request"}
    assert all(
        failure.get("message") and failure.get("type")
        for case in failures
        for failure in case.iter("failure")
    )
    code, xml = gate_output("--format", "junit", "--fail-on", "any", tmp_path=tmp_path)
    assert int(ElementTree.fromstring(xml).find("testsuite").get("failures")) == 3

    code, text = gate_output("--format", "github", tmp_path=tmp_path)
    lines = text.splitlines()
    command = re.compile(r"^::(error|warning|notice) title=([^\n:,]*)::([^\n\r]*)$")
    assert lines and all(command.match(line) for line in lines), lines
    levels = [command.match(line).group(1) for line in lines]
    assert levels.count("error") == 3  # two findings and the gate's verdict
    assert levels.count("notice") == 1 and levels.count("warning") == 1
    assert any("%3A" in line.split("::")[1] and "%2C" in line.split("::")[1] for line in lines)
    assert lines[-1].startswith("::error title=Release gate::Release gate fails")


def test_trend_matches_findings_by_signature_across_three_snapshots(upstream_a, definition):  # noqa: F811
    replayed(upstream_a)
    rule = ChangelogRule.objects.filter(upstream=upstream_a).first()

    def findings(*specs):
        """Replace every signature row, as a re-run would: new ids, rows in the order given."""
        DifferenceSignature.objects.filter(upstream=upstream_a).delete()
        for key, explained, exchanges in specs:
            # The same kind, path and endpoint for all: only the signature tells them apart.
            signature(
                upstream_a,
                key=key,
                path="/content/0/text",
                rule=rule if explained else None,
                exchanges=exchanges,
            )

    a, b, c, d = ("1" * 64), ("2" * 64), ("3" * 64), ("4" * 64)
    findings((a, False, 2), (b, True, 4), (c, False, 6))
    first = report_services.snapshot_create(definition=definition)
    findings((d, True, 1), (c, False, 3), (b, True, 9))
    second = report_services.snapshot_create(definition=definition)
    findings((c, False, 3), (a, False, 5), (d, True, 1))
    third = report_services.snapshot_create(definition=definition)

    def signatures(trend, key):
        return sorted(item["signature"] for item in trend[key])

    assert first.payload["trend"]["previous"] is None
    trend = second.payload["trend"]
    assert trend["previous"] == first.payload["generated_at"]
    assert (signatures(trend, "new"), signatures(trend, "fixed"), signatures(trend, "still_open")) == (
        [d],
        [a],
        [b, c],
    )
    assert trend["growing"] == [b] and trend["shrinking"] == [c]
    trend = third.payload["trend"]
    assert (signatures(trend, "new"), signatures(trend, "fixed"), signatures(trend, "still_open")) == (
        [a],
        [b],
        [c, d],
    )
    assert trend["growing"] == [] and trend["shrinking"] == []
    for snapshot in (first, second, third):
        jsonschema.validate(snapshot.payload, SCHEMA)


@pytest.mark.django_db(transaction=True)
def test_exit_code_2_on_unknown_upstream_or_no_replay(upstream_a, tmp_path):
    def run(*args) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", "compat_report", *args],
            cwd=PROJECT_ROOT,
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )

    unknown = run("--upstream", "nope")
    assert unknown.returncode == 2 and "No upstream" in unknown.stderr
    record(upstream_a, {"model": "m", "temperature": 1})
    no_replay = run("--upstream", upstream_a.slug)
    assert no_replay.returncode == 2 and "No replay has compared" in no_replay.stderr
    bad_level = run("--upstream", upstream_a.slug, "--fail-on", "sometimes")
    assert bad_level.returncode == 2
    replayed(upstream_a)
    assert run("--upstream", upstream_a.slug).returncode == 1
