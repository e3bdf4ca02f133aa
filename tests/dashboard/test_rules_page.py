"""The rules page: a team's editors change its rules there (no admin needed), viewers read them,
another team gets 404, and a disabled rule no longer rejects a request."""

from datetime import UTC, datetime

import pytest
from django.urls import reverse

from migrations_audit.capture.recording import CapturedExchange
from migrations_audit.capture.services import exchanges_record
from migrations_audit.diff.services import request_findings_check
from migrations_audit.models import ChangelogRule, Exchange, ModelRule


@pytest.fixture
def rule(upstream_a):
    return ChangelogRule.objects.filter(upstream=upstream_a, match__has_key="request").first()


def post(client, upstream, rule, kind="changelog", **fields):
    data = {
        "kind": kind,
        "rule": rule.pk,
        "title": rule.title,
        "explanation": rule.explanation,
        "classification": rule.classification,
        "enabled": "on",
        **fields,
    }
    data = {key: value for key, value in data.items() if value is not None}
    return client.post(reverse("migrations_audit:rules", args=[upstream.slug]), data)


def test_the_rules_page_lists_both_kinds_with_their_versions_and_links_from_settings(
    client, bob, upstream_a, rule
):
    client.force_login(bob)
    page = client.get(reverse("migrations_audit:rules", args=[upstream_a.slug])).content.decode()
    assert rule.key in page and f"{rule.version_from} → {rule.version_to}" in page
    model_rule = ModelRule.objects.filter(upstream=upstream_a).first()
    if model_rule is not None:
        assert model_rule.key in page
    assert "Save the rule" not in page, "a viewer reads, no form"
    url = reverse("migrations_audit:rules", args=[upstream_a.slug])
    assert url in client.get(reverse("migrations_audit:settings")).content.decode()
    assert url in client.get(reverse("migrations_audit:differences", args=[upstream_a.slug])).content.decode()


def test_an_admin_edits_a_rule_and_it_says_who_and_when(client, alice, upstream_a, rule):
    client.force_login(alice)
    response = post(client, upstream_a, rule, title="Temperature is refused", explanation="Use top_p.")
    assert response.status_code == 302
    rule.refresh_from_db()
    assert (rule.title, rule.explanation, rule.updated_by) == ("Temperature is refused", "Use top_p.", alice)
    assert rule.updated_at is not None
    page = client.get(reverse("migrations_audit:rules", args=[upstream_a.slug])).content.decode()
    assert "Temperature is refused" in page and "by alice" in page


def test_bad_values_are_refused_with_a_message(client, alice, upstream_a, rule):
    client.force_login(alice)
    response = post(client, upstream_a, rule, title="", classification="fatal")
    assert response.status_code == 200
    page = response.content.decode()
    assert "The rule was not saved" in page and "Title" in page and "Classification" in page
    assert ChangelogRule.objects.get(pk=rule.pk).title == rule.title


def test_a_viewer_and_another_team_cannot_edit(client, bob, charlie, upstream_a, upstream_b, rule):
    client.force_login(bob)
    assert post(client, upstream_a, rule, title="bob").status_code == 403
    client.force_login(charlie)
    assert client.get(reverse("migrations_audit:rules", args=[upstream_a.slug])).status_code == 404
    assert post(client, upstream_a, rule, title="charlie").status_code == 404
    # charlie names team A's rule through his own upstream: not found either.
    assert post(client, upstream_b, rule, title="charlie").status_code == 404
    assert ChangelogRule.objects.get(pk=rule.pk).title == rule.title


def check(upstream, client_name):
    recorded = exchanges_record(
        upstream=upstream,
        source="proxy",
        captured=[
            CapturedExchange(
                method="POST",
                path="/v1/messages",
                request_headers={"x-audit-client": client_name, "anthropic-version": "2023-06-01"},
                request_body=b'{"temperature": 1}',
                started_at=datetime(2026, 11, 1, tzinfo=UTC),
                status=200,
            )
        ],
    )
    request_findings_check(exchange_ids=recorded.exchange_ids)
    return Exchange.objects.get(pk=recorded.exchange_ids[0])


def test_a_disabled_rule_rejects_nothing(client, alice, upstream_a):
    finding = check(upstream_a, "before").request_findings.exclude(rule=None).first()
    assert finding is not None, "the shipped rules reject temperature under the target"
    rule = finding.rule
    client.force_login(alice)
    assert post(client, upstream_a, rule, enabled=None).status_code == 302
    assert not ChangelogRule.objects.get(pk=rule.pk).enabled
    assert not check(upstream_a, "after").request_findings.filter(rule=rule).exists()
    page = client.get(reverse("migrations_audit:rules", args=[upstream_a.slug])).content.decode()
    assert "disabled" in page
