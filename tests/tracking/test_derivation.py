"""Each client's status and impact, derived from traffic of several clients (keys, SDKs, versions)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from migrations_audit.diff.services import signature_of
from migrations_audit.models import ChangelogRule, Difference, DifferenceSignature, Status, StatusChange
from migrations_audit.tracking import selectors, services
from migrations_audit.tracking.sdk import Sdk, sdk_move, sdk_parse

from .factories import sdk_traffic

TARGET = "2026-10-21"
STREAM_BODY = {
    "model": "claude-2",
    "prompt": "\n\nHuman: hi\n\nAssistant:",
    "max_tokens_to_sample": 8,
    "stream": True,
}
COMPLETE_BODY = {"model": "claude-2", "prompt": "\n\nHuman: hi\n\nAssistant:", "max_tokens_to_sample": 8}
SAMPLING_BODY = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 16,
    "temperature": 0.2,
    "messages": [{"role": "user", "content": "hi"}],
}


def test_sdk_parse_every_era():
    assert str(sdk_parse(user_agent="Anthropic/Python 0.125.0")) == "Python 0.125.0"
    legacy = sdk_parse(
        headers={"anthropic-sdk": "anthropic-python/0.2.10", "user-agent": "python-requests/2"}
    )
    assert (legacy.language, legacy.version, legacy.major) == ("Python", "0.2.10", 0)
    stainless = sdk_parse(headers={"x-stainless-lang": "js", "x-stainless-package-version": "0.30.1"})
    assert str(stainless) == "JS 0.30.1"
    assert sdk_parse(user_agent="Anthropic/Go 2.0.0").major == 2
    assert sdk_parse(user_agent="Anthropic/JS 1.0.0").major_label == "JS 1.x"
    assert sdk_parse(sdk="Python 2.13.0").major == 2
    assert sdk_parse(user_agent="curl/8.5.0") is None


@pytest.fixture
def rules(upstream_a):
    """The Anthropic ruleset installed with the upstream, and the breaking signatures that a replay
    of legacy completions traffic records (diff stage)."""
    installed = {rule.key: rule for rule in ChangelogRule.objects.filter(upstream=upstream_a)}
    for key, kind, path in (
        ("stream-named-events", "stream_framing_changed", "stream:framing"),
        ("complete-exception-removed", "field_removed", "/exception"),
    ):
        DifferenceSignature.objects.create(
            upstream=upstream_a,
            signature=signature_of(
                version_from="2023-01-01",
                version_to="2023-06-01",
                endpoint="POST /v1/complete",
                kind=kind,
                path=path,
                rule_key=key,
            ),
            version_from="2023-01-01",
            version_to="2023-06-01",
            endpoint="POST /v1/complete",
            kind=kind,
            path=path,
            classification="breaking",
            rule=installed[key],
            count=3,
        )
    return installed


@pytest.fixture
def fleet(upstream_a, rules):
    """Six clients, each with its own key, SDK and history."""
    plain = sdk_traffic(
        upstream=upstream_a, release="1.17.0", key="sk-ant-plain", days_ago=list(range(20, -1, -2))
    )
    sampling = sdk_traffic(
        upstream=upstream_a, release="0.125.0", key="sk-ant-sampling", days_ago=[9, 5, 1], body=SAMPLING_BODY
    )
    # A routine upgrade from anthropic 1.x to 2.x three days ago: now on the target and Bearer.
    mixed = sdk_traffic(upstream=upstream_a, release="1.17.0", key="sk-ant-mixed", days_ago=[12, 8, 4, 3])
    mixed += sdk_traffic(
        upstream=upstream_a, release="2", key="sk-ant-mixed", days_ago=[2, 1, 0], status=400, per_day=2
    )
    mixed += sdk_traffic(upstream=upstream_a, release="1.17.0", key="sk-ant-mixed", days_ago=[1])
    done = sdk_traffic(upstream=upstream_a, release="1.17.0", key="sk-ant-done", days_ago=[30, 25, 21])
    done += sdk_traffic(upstream=upstream_a, release="2", key="sk-ant-done", days_ago=list(range(20, -1, -1)))
    streamer = sdk_traffic(
        upstream=upstream_a,
        release="0.2.10",
        key="sk-ant-stream",
        days_ago=[6, 2],
        body=STREAM_BODY,
        path="/v1/complete",
    )
    legacy_plain = sdk_traffic(
        upstream=upstream_a,
        release="0.2.10",
        key="sk-ant-legacy",
        days_ago=[6, 2],
        body=COMPLETE_BODY,
        path="/v1/complete",
    )
    return {
        "plain": plain[0].client,
        "sampling": sampling[0].client,
        "mixed": mixed[0].client,
        "done": done[0].client,
        "streamer": streamer[0].client,
        "legacy_plain": legacy_plain[0].client,
        "mixed_exchanges": mixed,
        "sampling_exchanges": sampling,
        "streamer_exchanges": streamer,
    }


def migration_for(upstream, *, deadline_in_days=60, from_versions=("2023-01-01", "2023-06-01"), **options):
    return services.migration_create(
        upstream=upstream,
        name="Move to 2026-10-21",
        target_version=TARGET,
        from_versions=list(from_versions),
        deadline=timezone.localdate() + timedelta(days=deadline_in_days),
        **options,
    )


def states_by_client(migration):
    return {state.client_id: state for state in migration.states.all()}


def test_each_status_and_impact_is_derived_from_traffic(upstream_a, fleet):
    migration = migration_for(upstream_a)
    changes = services.migration_refresh(migration=migration)
    states = states_by_client(migration)
    status = {
        name: states[fleet[name].pk].status for name in ("plain", "sampling", "mixed", "done", "streamer")
    }
    assert status == {
        "plain": Status.NOT_STARTED,
        "sampling": Status.AFFECTED,
        "mixed": Status.IN_PROGRESS,
        "done": Status.MIGRATED,
        # Only other clients' replays show the SSE change it may hit: not counted (see below).
        "streamer": Status.NOT_STARTED,
    }
    # Every first status is recorded as a change from nothing, with its cause.
    assert len(changes) == 6
    assert all(change.from_status == "" and change.cause for change in changes)

    names = ("plain", "sampling", "mixed", "done", "streamer", "legacy_plain")
    impact = {name: {e["key"]: e for e in states[fleet[name].pk].evidence["impact"]} for name in names}
    might = {name: {e["key"]: e for e in states[fleet[name].pk].evidence["might"]} for name in names}
    # The sampling client is hit by the request rule, seen directly on its own exchange.
    sampling = impact["sampling"]["sampling-parameters-removed"]
    assert sampling["direct"]
    assert sorted(sampling["exchange_ids"]) == sorted(e.pk for e in fleet["sampling_exchanges"])
    assert "/temperature" in sampling["why"]
    assert set(might["sampling"]) == set(), "what it is affected by is not repeated as a might"
    # Nothing from the legacy clients' own exchanges shows the completions changes: a client that
    # streams completions might be hit by the SSE change, one that never streams by the lost
    # `exception`; shown apart with the reason, never counted.
    assert impact["streamer"] == {} and impact["legacy_plain"] == {}
    assert set(might["streamer"]) == {"stream-named-events"}
    assert not might["streamer"]["stream-named-events"]["direct"]
    assert "streams on POST /v1/complete" in might["streamer"]["stream-named-events"]["why"]
    assert set(might["streamer"]["stream-named-events"]["exchange_ids"]) <= {
        e.pk for e in fleet["streamer_exchanges"]
    }
    assert set(might["legacy_plain"]) == {"complete-exception-removed"}
    # Messages clients without sampling parameters are not hit by anything.
    assert impact["plain"] == {}
    assert impact["done"] == {}


def test_sdk_moves_are_ordered_by_release_not_text():
    assert sdk_move(Sdk("Python", "2.15.0"), Sdk("Python", "1.17.0")) == "downgrade"
    assert sdk_move(Sdk("Python", "0.9.0"), Sdk("Python", "0.125.0")) == "upgrade"
    assert sdk_move(Sdk("Python", "1.17.0"), Sdk("Python", "2.0.0rc1")) == "upgrade"
    assert sdk_move(Sdk("Python", "1.17.0"), Sdk("JS", "2.0.0")) == "change"


def test_accidental_migration_is_flagged_with_error_rates(upstream_a, fleet):
    migration = migration_for(upstream_a)
    services.migration_refresh(migration=migration)
    accidental = states_by_client(migration)[fleet["mixed"].pk].evidence["accidental"]
    assert accidental["sdk_before"] == "Python 1.17.0"
    assert accidental["sdk_after"] == "Python 2.13.0"
    assert accidental["sdk_move"] == "upgrade"
    assert (accidental["version_before"], accidental["version_after"]) == ("2023-06-01", TARGET)
    assert (accidental["key_header_before"], accidental["key_header_after"]) == ("x-api-key", "authorization")
    assert accidental["error_rate_before"] == 0.0
    # After the upgrade: six 400s out of seven (one request of the old deployment still succeeds).
    assert accidental["requests_after"] == 7
    assert accidental["error_rate_after"] == pytest.approx(6 / 7, abs=1e-3)
    assert states_by_client(migration)[fleet["plain"].pk].evidence["accidental"] is None
    profile = selectors.client_profile(client=fleet["mixed"])
    assert profile["accidental"]["sdk_after"] == "Python 2.13.0"
    assert profile["sdks"] == ["Python 1.17.0", "Python 2.13.0"]


def test_deadline_near_puts_unmigrated_clients_at_risk(upstream_a, fleet):
    migration = migration_for(upstream_a, deadline_in_days=5)
    services.migration_refresh(migration=migration)
    states = states_by_client(migration)
    assert states[fleet["done"].pk].status == Status.MIGRATED
    for name in ("plain", "sampling", "mixed", "streamer"):
        assert states[fleet[name].pk].status == Status.AT_RISK, name
        assert "deadline" in states[fleet[name].pk].reason


def test_history_records_every_change_with_its_cause(upstream_a, fleet, alice):
    migration = migration_for(upstream_a, clients=[fleet["plain"]])
    services.migration_refresh(migration=migration)
    assert states_by_client(migration).keys() == {fleet["plain"].pk}
    # A refresh that finds nothing new records nothing.
    assert services.migration_refresh(migration=migration) == []

    sdk_traffic(upstream=upstream_a, release="2", key="sk-ant-plain", days_ago=[0])
    [change] = services.migration_refresh(migration=migration)
    assert (change.from_status, change.to_status) == (Status.NOT_STARTED, Status.IN_PROGRESS)
    assert "mixed versions" in change.cause or "quiet period" in change.cause

    # Eight days of nothing but the target later, the quiet period is over.
    later = timezone.now() + timedelta(days=8)
    [change] = services.migration_refresh(migration=migration, now=later)
    assert change.to_status == Status.MIGRATED and change.at == later

    state = migration.states.get()
    services.migration_state_override(
        state=state, status=Status.AT_RISK, reason="Rollback planned Friday", by=alice
    )
    state.refresh_from_db()
    assert state.status == Status.AT_RISK and state.derived_status == Status.MIGRATED
    history = list(StatusChange.objects.filter(migration=migration, client=fleet["plain"]).order_by("id"))
    assert [(c.from_status, c.to_status, c.is_override) for c in history] == [
        ("", Status.NOT_STARTED, False),
        (Status.NOT_STARTED, Status.IN_PROGRESS, False),
        (Status.IN_PROGRESS, Status.MIGRATED, False),
        (Status.MIGRATED, Status.AT_RISK, True),
    ]
    assert history[-1].by == alice and "Rollback planned Friday" in history[-1].cause


def test_burndown_counts_clients_and_traffic_still_on_old_versions(upstream_a, fleet):
    migration = migration_for(upstream_a)
    services.migration_refresh(migration=migration)
    series = selectors.migration_burndown(migration=migration)
    assert series[-1].day == timezone.localdate()
    first = series[0]
    assert first.clients_on_old == 1 and first.old_share == 1.0  # only "done", still on 2023-06-01
    # Today "mixed" sent only the target; "plain", "sampling" and the two legacy clients last sent
    # an old version.
    today = series[-1]
    assert today.clients_seen == 6
    assert today.clients_on_old == 4
    old_requests = 1 + 0  # plain's request today; "done" and "mixed" sent the target only
    assert (today.old_requests, today.requests) == (old_requests, 1 + 1 + 2)


def test_a_tools_change_hits_only_the_clients_that_send_tools(upstream_a):
    tools_body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 16,
        "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
        "messages": [{"role": "user", "content": "weather?"}],
    }
    with_tools = sdk_traffic(
        upstream=upstream_a, release="js", key="sk-ant-tools", days_ago=[2, 1], body=tools_body
    )
    without = sdk_traffic(upstream=upstream_a, release="1.17.0", key="sk-ant-chat", days_ago=[2, 1])
    DifferenceSignature.objects.create(
        upstream=upstream_a,
        signature="tool-use-input",
        version_from="2023-06-01",
        version_to=TARGET,
        endpoint="POST /v1/messages",
        kind="type_changed",
        path="/content/*/tool_use/input",
        classification="breaking",
        count=1,
    )
    migration = migration_for(upstream_a, from_versions=["2023-06-01"])
    services.migration_refresh(migration=migration)
    states = states_by_client(migration)
    tools_state = states[with_tools[0].client_id]
    # Only another client's replays show the change: the tools client might be hit, not counted.
    assert tools_state.status == Status.NOT_STARTED and tools_state.evidence["impact"] == []
    [entry] = tools_state.evidence["might"]
    assert "sends tools on POST /v1/messages" in entry["why"] and not entry["direct"]
    assert set(entry["exchange_ids"]) == {e.pk for e in with_tools}
    assert "tools" in tools_state.evidence["features"] and tools_state.evidence["sdks"] == ["JS 0.30.1"]
    assert states[without[0].client_id].evidence["impact"] == []
    assert states[without[0].client_id].evidence["might"] == []
    assert states[without[0].client_id].status == Status.NOT_STARTED
    # Once a replay of its own exchange shows it, it is affected.
    DifferenceSignature.objects.get(signature="tool-use-input").clients.add(with_tools[0].client)
    services.migration_refresh(migration=migration)
    tools_state.refresh_from_db()
    assert tools_state.status == Status.AFFECTED and tools_state.evidence["might"] == []
    assert [entry["key"] for entry in tools_state.evidence["impact"]] == ["tool-use-inp"]


def test_a_difference_seen_in_replays_of_a_clients_exchanges_is_direct_evidence(upstream_a, rules):
    [legacy] = sdk_traffic(
        upstream=upstream_a,
        release="0.2.10",
        key="sk-ant-replayed",
        days_ago=[1],
        body=COMPLETE_BODY,
        path="/v1/complete",
    )
    signature = DifferenceSignature.objects.get(upstream=upstream_a, path="/exception")
    signature.clients.add(legacy.client)
    Difference.objects.create(
        upstream=upstream_a,
        exchange=legacy,
        version_from="2023-01-01",
        version_to="2023-06-01",
        kind="field_removed",
        path="/exception",
        before=None,
        classification="breaking",
        rule=signature.rule,
        signature=signature.signature,
    )
    migration = migration_for(upstream_a)
    services.migration_refresh(migration=migration)
    [entry] = migration.states.get(client=legacy.client).evidence["impact"]
    assert entry["key"] == "complete-exception-removed" and entry["direct"]
    assert entry["exchange_ids"] == [legacy.pk]
    assert entry["why"] == "replays of its own exchanges show it (2023-01-01 → 2023-06-01)"
    assert entry["pairs"] == [["2023-01-01", "2023-06-01"]] and entry["sources"] == ["replay"]
