"""The diff services on real rows: exchanges recorded, results replayed, differences stored.

Two migrations of the story: team A moves its legacy Text Completions traffic from 2023-01-01 to
2023-06-01, and its Messages traffic from 2023-06-01 to 2026-10-21. Client "chatbot" sends clean
requests; client "batch-job" still passes temperature, a document in an assistant turn, and cited
user text."""

import hashlib
import json

import pytest
from django.db.models import F
from django.utils import timezone

from migrations_audit import services as core_services
from migrations_audit.capture.services import traffic_days_add
from migrations_audit.diff.selectors import (
    comparisons_for_run,
    differences_for_exchange,
    differences_for_run,
    request_findings_summary,
    signatures_for_client,
    signatures_for_upstream,
)
from migrations_audit.diff.services import (
    changelog_rules_install,
    exchanges_diff_record,
    request_findings_record,
)
from migrations_audit.models import (
    ChangelogRule,
    Client,
    Difference,
    DifferenceSignature,
    Exchange,
    ReplayResult,
    ReplayRun,
    RequestFinding,
)
from migrations_audit.models.diff import ComparisonTally
from tests.diff.anthropic_samples import (
    complete_2023_01_01,
    complete_2023_06_01,
    invalid_request,
    message_response,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def legacy_upstream(team_a):
    upstream = core_services.upstream_create(
        team=team_a,
        name="Anthropic legacy",
        slug="anthropic-legacy",
        base_url="http://127.0.0.1:9",
        baseline_version="2023-01-01",
        target_version="2023-06-01",
    )
    changelog_rules_install(upstream=upstream)
    return upstream


@pytest.fixture
def upstream(upstream_a):
    changelog_rules_install(upstream=upstream_a)
    return upstream_a


def client(upstream, name):
    return Client.objects.get_or_create(
        upstream=upstream, identity=name, defaults={"kind": Client.Kind.DECLARED}
    )[0]


def record(upstream, *, version, endpoint, request, response, who=None):
    method, _, path = endpoint.partition(" ")
    body = json.dumps(request).encode()
    exchange = Exchange.objects.create(
        upstream=upstream,
        client=who,
        started_at=timezone.now(),
        method=method,
        path=path,
        endpoint=endpoint,
        api_version=version,
        request_body=body,
        status=response.status,
        response_headers=response.headers,
        response_body=response.body,
        streamed=response.streamed,
        response_events=response.events or [],
        content_hash=hashlib.sha256(body + version.encode()).hexdigest(),
    )
    traffic_days_add(upstream=upstream, exchanges=[exchange])  # as capture does when it stores
    return exchange


def replayed(run, exchange, version, response, *, attempt=1):
    return ReplayResult.objects.create(
        run=run,
        exchange=exchange,
        version=version,
        attempt=attempt,
        state=ReplayResult.Status.DONE,
        status=response.status,
        response_headers=response.headers,
        response_body=response.body,
        streamed=response.streamed,
        response_events=response.events or [],
        finished_at=timezone.now(),
    )


def not_noise(exchange):
    return Difference.objects.filter(exchange=exchange).exclude(classification="noise")


PROMPT = {"model": "claude-instant-v1", "prompt": "\n\nHuman: Hi\n\nAssistant:", "max_tokens_to_sample": 50}


def test_rules_install_is_idempotent_and_keeps_admin_edits(upstream):
    assert ChangelogRule.objects.filter(upstream=upstream).count() == 9
    rule = ChangelogRule.objects.get(upstream=upstream, key="stream-done-removed")
    rule.title = "Edited in the admin"
    rule.save()
    assert changelog_rules_install(upstream=upstream) == 0
    assert ChangelogRule.objects.get(pk=rule.pk).title == "Edited in the admin"
    assert changelog_rules_install(upstream=upstream, overwrite=True) == 9
    assert ChangelogRule.objects.get(pk=rule.pk).title != "Edited in the admin"


def test_legacy_migration_finds_and_explains_the_five_changelog_entries(legacy_upstream):
    chatbot = client(legacy_upstream, "chatbot")
    streamed = record(
        legacy_upstream,
        version="2023-01-01",
        endpoint="POST /v1/complete",
        request={**PROMPT, "stream": True},
        response=complete_2023_01_01(stream=True),
        who=chatbot,
    )
    plain = record(
        legacy_upstream,
        version="2023-01-01",
        endpoint="POST /v1/complete",
        request=PROMPT,
        response=complete_2023_01_01(),
        who=chatbot,
    )
    run = ReplayRun.objects.create(upstream=legacy_upstream, versions=["2023-01-01", "2023-06-01"])
    for exchange, stream in ((streamed, True), (plain, False)):
        replayed(run, exchange, "2023-01-01", complete_2023_01_01(stream=stream, log_id="1" * 32))
        replayed(run, exchange, "2023-01-01", complete_2023_01_01(stream=stream, log_id="2" * 32), attempt=2)
        replayed(
            run,
            exchange,
            "2023-06-01",
            complete_2023_06_01(stream=stream, completion_id="compl_01Run1abcdefgh"),
        )
        exchanges_diff_record(run_id=run.pk, exchange_ids=[exchange.pk])

    breaking = not_noise(streamed).filter(classification="breaking")
    assert {d.rule.key for d in breaking} == {
        "complete-exception-removed",
        "complete-truncated-removed",
        "stream-named-events",
        "stream-done-removed",
        "stream-incremental-text",
    }
    assert not not_noise(streamed).filter(rule__isnull=True).exists()
    assert {(d.kind, d.rule.key) for d in not_noise(plain)} == {
        ("field_removed", "complete-exception-removed"),
        ("field_removed", "complete-truncated-removed"),
        ("field_added", "complete-type-and-id-added"),
        ("field_added", "complete-type-and-id-added"),
    }
    # The varying log ids are noise, measured by the repeat (stored as a 2023-01-01 -> 2023-01-01
    # comparison) and applied to the cross-version pair.
    noise = Difference.objects.filter(exchange=plain, classification="noise")
    assert {(d.version_from, d.version_to, d.path, d.noise_rate) for d in noise} == {
        ("2023-01-01", "2023-01-01", "/log_id", 1.0),
        ("2023-01-01", "2023-06-01", "/log_id", 1.0),
    }

    signatures = list(signatures_for_upstream(upstream=legacy_upstream))
    assert all(s.rule_id for s in signatures)
    done = next(s for s in signatures if s.kind == "done_marker_removed")
    assert (done.count, done.exchanges, done.compared, done.share) == (1, 1, 2, 0.5)
    assert list(done.clients.all()) == [chatbot]
    assert done.example == streamed
    assert {s.rule.key for s in signatures_for_client(client=chatbot)} >= {"stream-done-removed"}
    assert not differences_for_run(run=run).filter(rule__isnull=True).exists()
    assert [(c.source, c.breaking > 0) for c in comparisons_for_run(run=run).filter(exchange=plain)] == [
        ("repeat", False),
        ("replay", True),
    ]


def test_rediffing_is_idempotent_for_rows_and_aggregates(legacy_upstream):
    exchange = record(
        legacy_upstream,
        version="2023-01-01",
        endpoint="POST /v1/complete",
        request=PROMPT,
        response=complete_2023_01_01(),
    )
    run = ReplayRun.objects.create(upstream=legacy_upstream, versions=["2023-01-01", "2023-06-01"])
    replayed(run, exchange, "2023-01-01", complete_2023_01_01())
    replayed(run, exchange, "2023-06-01", complete_2023_06_01())
    exchanges_diff_record(run_id=run.pk, exchange_ids=[exchange.pk])
    first = sorted(Difference.objects.values_list("kind", "path", "signature"))
    exchanges_diff_record(run_id=run.pk, exchange_ids=[exchange.pk])
    assert sorted(Difference.objects.values_list("kind", "path", "signature")) == first
    assert set(DifferenceSignature.objects.values_list("count", "exchanges")) == {(1, 1)}
    assert ComparisonTally.objects.get().exchanges == 1


MESSAGES = {"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": [{"role": "user", "content": "Hi"}]}
REJECTED = [
    (
        {**MESSAGES, "temperature": 0.7},
        "temperature: Extra inputs are not permitted",
        "sampling-parameters-removed",
    ),
    (
        {
            **MESSAGES,
            "messages": [
                {"role": "user", "content": "Summarise"},
                {
                    "role": "assistant",
                    "content": [{"type": "document", "source": {"type": "text", "data": "x"}}],
                },
            ],
        },
        "messages.1.content.0: document blocks are not permitted in assistant messages",
        "assistant-document-rejected",
    ),
    (
        {
            **MESSAGES,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "search_result",
                            "source": "s",
                            "title": "t",
                            "content": [
                                {
                                    "type": "text",
                                    "text": "x",
                                    "citations": [{"type": "search_result_location"}],
                                }
                            ],
                        }
                    ],
                }
            ],
        },
        "messages.0.content.0.content.0: citations are not permitted in user text blocks",
        "user-text-citations-rejected",
    ),
]


def test_current_migration_request_check_then_replay_confirms(upstream):
    chatbot = client(upstream, "chatbot")
    batch_job = client(upstream, "batch-job")
    clean = record(
        upstream,
        version="2023-06-01",
        endpoint="POST /v1/messages",
        request=MESSAGES,
        response=message_response(),
        who=chatbot,
    )
    broken = [
        record(
            upstream,
            version="2023-06-01",
            endpoint="POST /v1/messages",
            request=request,
            response=message_response(),
            who=batch_job,
        )
        for request, _, _ in REJECTED
    ]
    already_new = record(
        upstream,
        version="2026-10-21",
        endpoint="POST /v1/messages",
        request={**MESSAGES, "temperature": 1},
        response=invalid_request("temperature: x"),
    )

    request_findings_record(exchanges=[clean, *broken, already_new])

    findings = RequestFinding.objects.order_by("exchange_id")
    assert [(f.exchange, f.rule.key, f.field, f.confirmed) for f in findings] == [
        (broken[0], "sampling-parameters-removed", "/temperature", None),
        (broken[1], "assistant-document-rejected", "/messages/1/content/0", None),
        (broken[2], "user-text-citations-rejected", "/messages/0/content/0/content/0", None),
    ]
    summary = request_findings_summary(upstream=upstream, version="2026-10-21")
    assert (summary.exchanges_checked, summary.exchanges_rejected, summary.share) == (4, 3, 0.75)
    assert [(c.client, c.exchanges_rejected, c.share) for c in summary.clients] == [(batch_job, 3, 1.0)]
    assert {r.rule.key: r.exchanges for r in summary.rules} == {rule: 1 for _, _, rule in REJECTED}

    # Recording the same batch again stores nothing twice.
    request_findings_record(exchanges=[clean, *broken])
    assert RequestFinding.objects.count() == 3

    run = ReplayRun.objects.create(upstream=upstream, versions=["2023-06-01", "2026-10-21"])
    ids = iter(f"msg_01Replay{n:08d}" for n in range(100))
    replayed(run, clean, "2023-06-01", message_response(message_id=next(ids)))
    replayed(run, clean, "2026-10-21", message_response(message_id=next(ids)))
    for exchange, (_, message, _) in zip(broken, REJECTED, strict=True):
        replayed(run, exchange, "2023-06-01", message_response(message_id=next(ids)))
        replayed(run, exchange, "2023-06-01", message_response(message_id=next(ids)), attempt=2)
        replayed(run, exchange, "2026-10-21", invalid_request(message))
    for exchange in [clean, *broken]:
        exchanges_diff_record(run_id=run.pk, exchange_ids=[exchange.pk])

    assert not not_noise(clean).exists()
    assert {d.path for d in Difference.objects.filter(exchange=clean)} == {"/id"}
    for exchange, (_, _, rule) in zip(broken, REJECTED, strict=True):
        [difference] = not_noise(exchange)
        assert (difference.kind, difference.rule.key, difference.classification) == (
            "outcome_changed",
            rule,
            "breaking",
        )
        assert difference.path == exchange.request_findings.get().field
        assert difference.after["error_type"] == "invalid_request_error"
        shown = [d for d in differences_for_exchange(exchange=exchange) if d.classification != "noise"]
        assert [d.kind for d in shown] == ["outcome_changed"]
    assert set(RequestFinding.objects.values_list("confirmed", flat=True)) == {True}
    assert not Difference.objects.filter(classification="breaking", rule__isnull=True).exists()

    outcome = [s for s in signatures_for_upstream(upstream=upstream) if s.kind == "outcome_changed"]
    assert len(outcome) == 3 and all(s.share == 0.25 for s in outcome)
    noise = signatures_for_upstream(upstream=upstream, include_noise=True).filter(classification="noise")
    assert {(s.version_from, s.version_to, s.kind, s.path, s.exchanges) for s in noise} == {
        ("2023-06-01", "2023-06-01", "value_changed", "/id", 3),
        ("2023-06-01", "2026-10-21", "value_changed", "/id", 1),
    }


def test_a_replay_that_accepts_the_request_contradicts_the_finding(upstream):
    exchange = record(
        upstream,
        version="2023-06-01",
        endpoint="POST /v1/messages",
        request={**MESSAGES, "top_k": 5},
        response=message_response(),
    )
    request_findings_record(exchanges=[exchange])
    run = ReplayRun.objects.create(upstream=upstream, versions=["2026-10-21"])
    replayed(run, exchange, "2026-10-21", message_response(message_id="msg_01Contradicts0"))
    exchanges_diff_record(run_id=run.pk, exchange_ids=[exchange.pk])
    assert RequestFinding.objects.get().confirmed is False


def test_captured_response_is_compared_with_a_replay_of_another_version(upstream):
    exchange = record(
        upstream,
        version="2023-06-01",
        endpoint="POST /v1/messages",
        request={**MESSAGES, "temperature": 1},
        response=message_response(),
    )
    run = ReplayRun.objects.create(upstream=upstream, versions=["2026-10-21"])
    replayed(run, exchange, "2026-10-21", invalid_request("temperature: Extra inputs are not permitted"))
    exchanges_diff_record(run_id=run.pk, exchange_ids=[exchange.pk])
    [difference] = Difference.objects.filter(exchange=exchange)
    assert (
        difference.version_from,
        difference.version_to,
        difference.kind,
        difference.path,
        difference.rule.key,
    ) == ("2023-06-01", "2026-10-21", "outcome_changed", "/temperature", "sampling-parameters-removed")
    assert exchange.comparisons.get().source == "capture"


def test_a_recording_and_a_replay_differ_in_generated_content_and_infrastructure_only_as_noise(upstream):
    # Recorded through a CDN months ago; replayed today against a local server.
    recorded_answer = message_response(text="Hello there")
    recorded_answer.headers.update({"cf-ray": "8a1b2c", "via": "1.1 google"})
    exchange = record(
        upstream,
        version="2023-06-01",
        endpoint="POST /v1/messages",
        request=MESSAGES,
        response=recorded_answer,
    )
    answer = message_response(message_id="msg_01OtherIdentifier", text="Something else was generated")
    answer.headers["server"] = "uvicorn"
    run = ReplayRun.objects.create(upstream=upstream, versions=["2026-10-21"])
    replayed(run, exchange, "2026-10-21", answer)
    exchanges_diff_record(run_id=run.pk, exchange_ids=[exchange.pk])
    assert not not_noise(exchange).exists()


def test_an_unexplained_breaking_difference_sorts_first(upstream):
    exchange = record(
        upstream,
        version="2023-06-01",
        endpoint="POST /v1/messages",
        request=MESSAGES,
        response=message_response(),
    )
    run = ReplayRun.objects.create(upstream=upstream, versions=["2023-06-01", "2026-10-21"])
    replayed(run, exchange, "2023-06-01", message_response())
    changed = message_response()
    body = json.loads(changed.body)
    body["usage"] = {"input_tokens": "12", "output_tokens": 5}
    body["stop_details"] = None
    changed.body = json.dumps(body).encode()
    replayed(run, exchange, "2026-10-21", changed)
    exchanges_diff_record(run_id=run.pk, exchange_ids=[exchange.pk])
    first, second = signatures_for_upstream(upstream=upstream)
    assert (first.kind, first.path, first.classification, first.rule) == (
        "type_changed",
        "/usage/input_tokens",
        "breaking",
        None,
    )
    assert (second.kind, second.classification) == ("field_added", "additive")


def test_what_one_exchange_repeat_shows_varying_is_noise_for_the_others(upstream):
    """Generated text varies between two calls of the same version: the noise sample of one
    exchange makes the text differences of every exchange of the endpoint noise, before and after."""
    run = ReplayRun.objects.create(upstream=upstream, versions=["2023-06-01", "2026-10-21"])
    exchanges = [
        record(
            upstream,
            version="2023-06-01",
            endpoint="POST /v1/messages",
            request=MESSAGES,
            response=message_response(),
        )
        for _ in range(3)
    ]
    first, sampled, last = exchanges
    for exchange in exchanges:
        replayed(run, exchange, "2023-06-01", message_response(text="Hello there"))
        replayed(run, exchange, "2026-10-21", message_response(text="Hi! How can I help?"))
    replayed(run, sampled, "2023-06-01", message_response(text="Hey"), attempt=2)

    exchanges_diff_record(run_id=run.pk, exchange_ids=[first.pk])
    assert Difference.objects.get(exchange=first).classification == "breaking"

    exchanges_diff_record(run_id=run.pk, exchange_ids=[sampled.pk])
    exchanges_diff_record(run_id=run.pk, exchange_ids=[last.pk])
    cross = Difference.objects.exclude(version_from=F("version_to"))
    assert set(cross.values_list("exchange", "path", "classification")) == {
        (exchange.pk, "/content/0/text", "noise") for exchange in exchanges
    }
    assert cross.get(exchange=last).noise_rate == 1.0
    assert not signatures_for_upstream(upstream=upstream).exists()
    [text] = signatures_for_upstream(upstream=upstream, include_noise=True, version_to="2026-10-21")
    assert (text.path, text.classification, text.exchanges, text.share) == (
        "/content/*/text",
        "noise",
        3,
        1.0,
    )


def test_noise_propagation_takes_as_many_queries_for_many_repeats_as_for_one(upstream):
    """What repeats show varying turns earlier signatures to noise in a fixed number of queries per
    diffed batch, however many exchanges of the batch had repeats."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    run = ReplayRun.objects.create(upstream=upstream, versions=["2023-06-01", "2026-10-21"])

    def exchange(*, repeat):
        recorded = record(
            upstream,
            version="2023-06-01",
            endpoint="POST /v1/messages",
            request=MESSAGES,
            response=message_response(),
        )
        replayed(run, recorded, "2023-06-01", message_response(text="Hello there"))
        replayed(run, recorded, "2026-10-21", message_response(text="Hi! How can I help?"))
        if repeat:
            replayed(run, recorded, "2023-06-01", message_response(text="Hey"), attempt=2)
        return recorded

    earlier = exchange(repeat=False)
    exchanges_diff_record(run_id=run.pk, exchange_ids=[earlier.pk])
    assert Difference.objects.get(exchange=earlier).classification == "breaking"

    one = [exchange(repeat=True)]
    with CaptureQueriesContext(connection) as small:
        exchanges_diff_record(run_id=run.pk, exchange_ids=[e.pk for e in one])
    assert Difference.objects.get(exchange=earlier).classification == "noise"

    # The same starting point again (the earlier difference not yet known as noise), eight repeats.
    Difference.objects.filter(exchange=earlier).update(classification="breaking")
    DifferenceSignature.objects.exclude(version_from=F("version_to")).update(classification="breaking")
    many = [exchange(repeat=True) for _ in range(8)]
    with CaptureQueriesContext(connection) as large:
        exchanges_diff_record(run_id=run.pk, exchange_ids=[e.pk for e in many])
    assert len(large) <= len(small), f"{len(small)} -> {len(large)} queries"
    cross = Difference.objects.exclude(version_from=F("version_to"))
    assert set(cross.values_list("classification", flat=True)) == {"noise"}
    assert cross.count() == 10
    assert set(DifferenceSignature.objects.values_list("classification", flat=True)) == {"noise"}


def test_a_truncated_recording_is_not_compared(upstream):
    """Only the start of the response was recorded (it went past the recording limit): comparing it
    with a replay would report the cut as a difference."""
    exchange = record(
        upstream,
        version="2023-06-01",
        endpoint="POST /v1/messages",
        request=MESSAGES,
        response=message_response(),
    )
    Exchange.objects.filter(pk=exchange.pk).update(truncated=True, response_body=b'{"id": "msg_01XyZ')
    run = ReplayRun.objects.create(upstream=upstream, versions=["2026-10-21"])
    replayed(run, exchange, "2026-10-21", message_response())
    exchanges_diff_record(run_id=run.pk, exchange_ids=[exchange.pk])
    assert not Difference.objects.filter(exchange=exchange).exists()
    assert not exchange.comparisons.exists()
