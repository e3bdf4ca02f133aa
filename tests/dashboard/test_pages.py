"""The audit pages: who sees what, filters, keyset pagination, htmx partials with a JS-off fallback,
and query counts that don't grow with the data."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from migrations_audit.capture.recording import CapturedExchange
from migrations_audit.capture.services import exchanges_record
from migrations_audit.models import Exchange

START = datetime(2026, 11, 1, tzinfo=UTC)


def record(
    upstream,
    count,
    *,
    client="svc",
    version="2023-06-01",
    status=200,
    body=b'{"model": "m"}',
    streamed=False,
    path="/v1/messages",
):
    exchanges_record(
        upstream=upstream,
        source="proxy",
        captured=[
            CapturedExchange(
                method="POST",
                path=path,
                request_headers={"x-audit-client": client, "anthropic-version": version},
                request_body=body,
                started_at=START + timedelta(minutes=index),
                status=status,
                response_headers={"content-type": "text/event-stream" if streamed else "application/json"},
                response_body=b"event: ping\ndata: {}\n\n" if streamed else b'{"id": "msg_1", "content": []}',
                duration_ms=100 + index,
            )
            for index in range(count)
        ],
    )


@pytest.fixture
def traffic(upstream_a):
    record(upstream_a, 30, client="billing")
    record(upstream_a, 5, client="search", version="2026-10-21", status=400, body=b'{"temperature": 1}')
    record(upstream_a, 3, client="chat", streamed=True, path="/v1/complete", version="2023-01-01")
    return upstream_a


PAGES = ["overview", "traffic", "differences", "runs", "clients"]


@pytest.mark.parametrize("name", PAGES)
def test_team_members_see_their_upstream_and_others_get_404(client, alice, charlie, traffic, name):
    from django.urls import reverse

    url = reverse(f"migrations_audit:{name}", args=[traffic.slug])
    client.force_login(alice)
    assert client.get(url).status_code == 200
    client.force_login(charlie)
    assert client.get(url).status_code == 404


def test_exchange_of_another_team_is_404(client, charlie, traffic, upstream_b):
    exchange = Exchange.objects.filter(upstream=traffic).first()
    client.force_login(charlie)
    assert client.get(f"/u/{traffic.slug}/traffic/{exchange.pk}/").status_code == 404
    assert client.get(f"/u/{upstream_b.slug}/traffic/{exchange.pk}/").status_code == 404


def test_overview_shows_the_headline_from_the_request_check(client, alice, traffic):
    client.force_login(alice)
    html = client.get(f"/u/{traffic.slug}/").content.decode()
    assert "Would your traffic survive 2026-10-21?" in html
    assert "38 exchanges" in html.replace("Traffic recorded (", "")


def test_filters_narrow_the_traffic(client, alice, traffic):
    client.force_login(alice)
    page = client.get(f"/u/{traffic.slug}/traffic/", {"status": "4xx"})
    assert len(page.context["rows"]) == 5
    assert {row.api_version for row in page.context["rows"]} == {"2026-10-21"}
    assert len(client.get(f"/u/{traffic.slug}/traffic/", {"streamed": "yes"}).context["rows"]) == 3
    assert len(client.get(f"/u/{traffic.slug}/traffic/", {"q": "search"}).context["rows"]) == 5
    assert (
        len(client.get(f"/u/{traffic.slug}/traffic/", {"endpoint": "POST /v1/complete"}).context["rows"]) == 3
    )
    bad = client.get(f"/u/{traffic.slug}/traffic/", {"status": "teapot", "since": "someday"})
    assert bad.status_code == 400
    assert len(bad.context["filters"].errors) == 2
    assert "Status must be a code" in bad.content.decode()


def test_keyset_pagination_walks_every_row_once(client, alice, traffic):
    client.force_login(alice)
    seen, after = [], ""
    for _ in range(10):
        response = client.get(f"/u/{traffic.slug}/traffic/", {"after": after} if after else {})
        seen += [row.pk for row in response.context["rows"]]
        after = response.context["next_cursor"]
        if not after:
            break
    assert len(seen) == len(set(seen)) == 38
    times = list(
        Exchange.objects.filter(pk__in=seen).order_by("-started_at", "-id").values_list("pk", flat=True)
    )
    assert seen == times


def test_keyset_pagination_by_duration(client, alice, traffic):
    record(traffic, 20, client="batch")
    client.force_login(alice)
    first = client.get(f"/u/{traffic.slug}/traffic/", {"sort": "slowest"})
    assert first.context["next_cursor"]
    second = client.get(
        f"/u/{traffic.slug}/traffic/", {"sort": "slowest", "after": first.context["next_cursor"]}
    )
    assert not second.context["next_cursor"]
    rows = first.context["rows"] + second.context["rows"]
    durations = [row.duration_ms for row in rows]
    assert durations == sorted(durations, reverse=True)
    assert len({row.pk for row in rows}) == 58


def test_htmx_gets_the_partial_and_a_plain_request_the_full_page(client, alice, traffic):
    client.force_login(alice)
    url = f"/u/{traffic.slug}/traffic/?status=4xx"
    partial = client.get(url, headers={"HX-Request": "true"}).content.decode()
    full = client.get(url).content.decode()
    assert '<section id="results"' in partial and "<html" not in partial
    assert "<html" in full and '<section id="results"' in full


def test_exchange_detail_shows_request_response_and_timeline(client, alice, traffic):
    client.force_login(alice)
    streamed = Exchange.objects.filter(upstream=traffic, streamed=True).first()
    html = client.get(f"/u/{traffic.slug}/traffic/{streamed.pk}/").content.decode()
    assert "Stream timeline" in html and "Reassembled text" in html
    rejected = Exchange.objects.filter(upstream=traffic, status=400).first()
    html = client.get(f"/u/{traffic.slug}/traffic/{rejected.pk}/").content.decode()
    assert "Recorded (2026-10-21)" in html


def test_recorded_html_is_shown_escaped(client, alice, upstream_a):
    record(upstream_a, 1, client="<script>alert(1)</script>", body=b'{"x": "<img src=x onerror=alert(1)>"}')
    client.force_login(alice)
    exchange = Exchange.objects.get()
    for url in (
        f"/u/{upstream_a.slug}/traffic/",
        f"/u/{upstream_a.slug}/traffic/{exchange.pk}/",
        f"/u/{upstream_a.slug}/",
    ):
        html = client.get(url).content.decode()
        assert "<script>alert(1)" not in html and "<img src=x" not in html


@pytest.mark.parametrize("name", ["overview", "traffic", "differences", "clients"])
def test_query_count_does_not_grow_with_rows(client, alice, upstream_a, name):
    from django.urls import reverse

    client.force_login(alice)
    url = reverse(f"migrations_audit:{name}", args=[upstream_a.slug])
    record(upstream_a, 5, client="a")
    with CaptureQueriesContext(connection) as small:
        client.get(url)
    record(upstream_a, 60, client="b")
    record(upstream_a, 60, client="c", version="2026-10-21", body=b'{"temperature": 1}')
    with CaptureQueriesContext(connection) as large:
        client.get(url)
    assert len(large) <= len(small) + 2, f"{name}: {len(small)} -> {len(large)} queries"


def test_upstream_create_and_edit_keep_the_replay_key_write_only(client, alice, bob, team_a, settings):
    from migrations_audit import services as core_services
    from migrations_audit.models import Upstream

    settings.MIGRATION_AUDIT_UPSTREAM_HOSTS = [*settings.MIGRATION_AUDIT_UPSTREAM_HOSTS, "api.stripe.com"]
    client.force_login(alice)
    form = {
        "team": team_a.pk,
        "name": "Stripe",
        "slug": "stripe",
        "base_url": "https://api.stripe.com/",
        "version_header": "Stripe-Version",
        "baseline_version": "2024-06-20",
        "target_version": "2025-01-27",
        "rate_limit_rps": 5,
        "rate_limit_concurrency": 2,
        "record_one_in": 1,
        "replay_key_header": "authorization",
        "versions_text": "2024-06-20 2024-06-20\n2025-01-27",
        "endpoints_text": "POST /v1/charges",
        "volatile_text": "Date\nRequest-Id",
        "replay_key": "sk_live_write_only",
    }
    response = client.post("/settings/upstreams/new/", form)
    assert response.status_code == 302
    upstream = Upstream.objects.get(slug="stripe")
    assert upstream.version_header == "stripe-version" and upstream.base_url == "https://api.stripe.com"
    assert list(upstream.versions.values_list("name", flat=True)) == ["2024-06-20", "2025-01-27"]
    assert core_services.upstream_replay_key(upstream=upstream) == "sk_live_write_only"
    page = client.get("/settings/upstreams/stripe/").content.decode()
    assert "sk_live_write_only" not in page and upstream.replay_key_encrypted not in page
    assert client.post("/settings/upstreams/stripe/", {**form, "replay_key": ""}).status_code == 302
    assert core_services.upstream_replay_key(upstream=upstream) == "sk_live_write_only", "empty keeps the key"
    bad = client.post(
        "/settings/upstreams/stripe/", {**form, "target_version": "2099-01-01", "endpoints_text": "x"}
    )
    assert {"target_version", "endpoints_text"} <= set(bad.context["form"].errors)
    client.force_login(bob)
    assert client.get("/settings/upstreams/stripe/").status_code == 403


UPSTREAM_FORM = {
    "name": "Anthropic",
    "slug": "anthropic",
    "base_url": "http://127.0.0.1:9",
    "version_header": "anthropic-version",
    "baseline_version": "2023-06-01",
    "target_version": "2026-10-21",
    "rate_limit_rps": 50,
    "rate_limit_concurrency": 8,
    "record_one_in": 1,
    "replay_key_header": "x-api-key",
    "versions_text": "2023-01-01\n2023-06-01\n2026-10-21",
    "endpoints_text": "POST /v1/messages",
    "volatile_text": "date",
}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("rate_limit_rps", -5, "Give a rate between"),
        ("rate_limit_rps", 0, "Give a rate between"),
        ("rate_limit_concurrency", 0, "Allow between 1 and 1,000"),
        ("record_one_in", 0, "with N at least 1"),
        ("max_tokens_clamp", 0, "Clamp max_tokens to at least 1"),
    ],
)
def test_upstream_limits_that_let_nothing_through_are_refused(
    client, alice, upstream_a, field, value, message
):
    client.force_login(alice)
    form = {**UPSTREAM_FORM, "team": upstream_a.team_id, field: value}
    response = client.post(f"/settings/upstreams/{upstream_a.slug}/", form)
    assert response.status_code == 200
    assert message in " ".join(response.context["form"].errors[field])
    upstream_a.refresh_from_db()
    assert (upstream_a.rate_limit_rps, upstream_a.rate_limit_concurrency, upstream_a.record_one_in) == (
        50.0,
        8,
        1,
    )


def test_baseline_and_target_are_chosen_among_the_versions(client, alice, upstream_a):
    client.force_login(alice)
    page = client.get(f"/settings/upstreams/{upstream_a.slug}/")
    form = page.context["form"]
    assert [value for value, _ in form.fields["target_version"].widget.choices] == [
        "",
        "2023-01-01",
        "2023-06-01",
        "2026-10-21",
    ]
    # A dated version is listed once, not as "2023-01-01 2023-01-01".
    assert form["versions_text"].value() == "2023-01-01\n2023-06-01\n2026-10-21"
    html = page.content.decode()
    assert f"{upstream_a.proxy_url}" in html


def test_an_upstream_is_deleted_only_after_confirming_what_goes_with_it(client, alice, bob, upstream_a):
    from migrations_audit.models import Upstream

    record(upstream_a, 4, client="svc")
    url = f"/settings/upstreams/{upstream_a.slug}/delete/"
    client.force_login(bob)
    assert client.get(url).status_code == 403
    assert client.post(url, {"confirm_slug": upstream_a.slug}).status_code == 403
    client.force_login(alice)
    page = client.get(url).content.decode()
    assert "<strong>4</strong> exchanges" in page and "<strong>1</strong> clients" in page
    assert client.post(url, {"confirm_slug": "wrong"}).status_code == 200
    assert Upstream.objects.filter(pk=upstream_a.pk).exists()
    response = client.post(url, {"confirm_slug": upstream_a.slug})
    assert response.status_code == 302
    assert not Upstream.objects.filter(pk=upstream_a.pk).exists()
    assert not Exchange.objects.exists()


def test_the_daily_rollup_counts_every_stored_exchange(upstream_a):
    from django.db.models import Sum

    from migrations_audit.models import TrafficDay

    record(upstream_a, 7, client="a")
    record(upstream_a, 5, client="a")
    record(upstream_a, 3, client="b", version="2026-10-21")
    assert TrafficDay.objects.filter(upstream=upstream_a).aggregate(n=Sum("count"))["n"] == 15
    row = TrafficDay.objects.get(upstream=upstream_a, client__identity="a")
    assert (row.count, row.api_version, row.endpoint) == (12, "2023-06-01", "POST /v1/messages")


def test_differences_list_their_clients_and_examples_work_as_partial_and_page(client, alice, upstream_a):
    from migrations_audit.models import Client, Difference, DifferenceSignature

    record(upstream_a, 2, client="svc")
    exchange = Exchange.objects.first()
    signature = DifferenceSignature.objects.create(
        upstream=upstream_a,
        signature="x" * 64,
        version_from="2023-06-01",
        version_to="2026-10-21",
        endpoint="POST /v1/messages",
        kind="field_removed",
        path="/exception",
        classification="breaking",
        count=1,
        exchanges=1,
        example=exchange,
    )
    signature.clients.add(Client.objects.get(identity="svc"))
    Difference.objects.create(
        upstream=upstream_a,
        exchange=exchange,
        version_from="2023-06-01",
        version_to="2026-10-21",
        kind="field_removed",
        path="/exception",
        classification="breaking",
        signature="x" * 64,
    )
    client.force_login(alice)
    page = client.get(f"/u/{upstream_a.slug}/differences/")
    assert page.context["page"].object_list[0].clients_affected == 1
    url = f"/u/{upstream_a.slug}/differences/{signature.pk}/"
    partial = client.get(url, headers={"HX-Request": "true"}).content.decode()
    full = client.get(url).content.decode()
    assert '<section id="examples">' in partial and "<html" not in partial
    assert "<html" in full and f"#{exchange.pk}" in full


def _signature(
    upstream, name, *, classification="breaking", version_from="2023-06-01", client=None, run=None
):
    from migrations_audit.models import Client, Difference, DifferenceSignature

    exchange = Exchange.objects.filter(upstream=upstream).first()
    signature = DifferenceSignature.objects.create(
        upstream=upstream,
        signature=name * 64,
        version_from=version_from,
        version_to="2026-10-21",
        endpoint="POST /v1/messages",
        kind="value_changed",
        path=f"/{name}",
        classification=classification,
        count=1,
        exchanges=1,
        example=exchange,
    )
    if client:
        signature.clients.add(Client.objects.get(upstream=upstream, identity=client))
    Difference.objects.create(
        upstream=upstream,
        exchange=exchange,
        run=run,
        version_from=version_from,
        version_to="2026-10-21",
        kind="value_changed",
        path=f"/{name}",
        before=None,
        after={"status": 400, "flag": False},
        classification=classification,
        signature=name * 64,
    )
    return signature


def test_differences_filter_by_run_version_pair_client_and_class(client, alice, traffic):
    from migrations_audit.models import Client, ReplayRun

    run = ReplayRun.objects.create(upstream=traffic, versions=["2026-10-21"])
    _signature(traffic, "a", client="billing", run=run)
    _signature(traffic, "b", client="search", version_from="2023-01-01")
    _signature(traffic, "c", classification="additive", client="billing")
    _signature(traffic, "d", classification="noise")
    client.force_login(alice)
    url = f"/u/{traffic.slug}/differences/"

    def paths(**query):
        response = client.get(url, query)
        assert response.status_code == 200
        return sorted(s.path for s in response.context["page"].object_list)

    assert paths() == ["/a", "/b", "/c"]
    assert paths(run=run.pk) == ["/a"]
    assert paths(pair="2023-01-01..2026-10-21") == ["/b"]
    assert paths(client=Client.objects.get(identity="billing").pk) == ["/a", "/c"]
    assert paths(classification="additive") == ["/c"]
    assert paths(noise="on") == ["/a", "/b", "/c", "/d"]
    # The run page's "differences so far" opens that run's differences.
    run_page = client.get(f"/u/{traffic.slug}/runs/{run.pk}/").content.decode()
    assert f"{url}?run={run.pk}" in run_page


@pytest.mark.parametrize(
    "query",
    [
        {"run": "abc"},
        {"run": "99999999999999999999"},
        {"client": "-1"},
        {"pair": "x..y"},
        {"classification": "z"},
    ],
)
def test_differences_refuse_filters_that_name_nothing(client, alice, traffic, query):
    client.force_login(alice)
    response = client.get(f"/u/{traffic.slug}/differences/", query)
    assert response.status_code == 400
    assert 'role="alert"' in response.content.decode()


def test_difference_values_are_shown_as_json_not_python(client, alice, traffic):
    signature = _signature(traffic, "a", client="billing")
    client.force_login(alice)
    page = client.get(f"/u/{traffic.slug}/differences/{signature.pk}/").content.decode()
    assert "null" in page and "false" in page
    assert "None" not in page and "False" not in page


def test_har_import_progress_is_a_partial_for_htmx_and_a_page_without(client, alice, upstream_a):
    from migrations_audit.models import HarImport

    job = HarImport.objects.create(
        upstream=upstream_a,
        filename="t.har",
        stored_path="/x",
        state="running",
        bytes_total=100,
        bytes_done=50,
    )
    client.force_login(alice)
    url = f"/u/{upstream_a.slug}/import/{job.pk}/"
    partial = client.get(url, headers={"HX-Request": "true"})
    assert partial.status_code == 200 and "50%" in partial.content.decode()
    assert "<html" in client.get(url).content.decode()
    HarImport.objects.filter(pk=job.pk).update(state="done")
    assert client.get(url, headers={"HX-Request": "true"}).status_code == 286, "polling stops when done"


def test_the_favicon_is_served_to_anyone(client):
    icon = client.get("/favicon.ico", follow=True)
    assert icon.status_code == 200
    body = b"".join(icon.streaming_content) if icon.streaming else icon.content
    assert b"<svg" in body


def test_a_compressed_answer_is_shown_decoded_and_stored_as_sent(client, alice, upstream_a):
    import gzip

    answer = b'{"type": "message", "content": [{"type": "text", "text": "readable words"}]}'
    exchanges_record(
        upstream=upstream_a,
        source="proxy",
        captured=[
            CapturedExchange(
                method="POST",
                path="/v1/messages",
                request_headers={"anthropic-version": "2023-06-01"},
                request_body=b"{}",
                started_at=START,
                status=200,
                response_headers={"content-type": "application/json", "content-encoding": "gzip"},
                response_body=gzip.compress(answer),
            )
        ],
    )
    exchange = Exchange.objects.get()
    assert bytes(exchange.response_body) == gzip.compress(answer)
    client.force_login(alice)
    page = client.get(f"/u/{upstream_a.slug}/traffic/{exchange.pk}/").content.decode()
    assert "readable words" in page and "Sent gzip-compressed; shown decoded" in page


def test_the_clients_page_is_paginated_and_its_queries_do_not_grow_with_clients(client, alice, upstream_a):
    from django.urls import reverse

    from migrations_audit.tracking.selectors import CLIENTS_PER_PAGE

    client.force_login(alice)
    url = reverse("migrations_audit:clients", args=[upstream_a.slug])
    for name in ("a", "b"):
        record(upstream_a, 3, client=f"service-{name}")
    with CaptureQueriesContext(connection) as small:
        assert client.get(url).status_code == 200
    for index in range(CLIENTS_PER_PAGE + 10):
        record(upstream_a, 4, client=f"worker-{index:03d}", version="2026-10-21")
    with CaptureQueriesContext(connection) as large:
        first = client.get(url).content.decode()
    assert len(large) <= len(small) + 1, f"{len(small)} -> {len(large)} queries"
    assert first.count('class="owner-cell"') == CLIENTS_PER_PAGE
    assert "Page 1 of 2" in first and "page=2" in first
    second = client.get(url, {"page": 2}).content.decode()
    assert second.count('class="owner-cell"') == 12
    assert "worker-059" in second and "2026-10-21" in second


def test_overview_counts_every_breaking_difference_and_lists_ten(client, alice, upstream_a):
    from django.urls import reverse

    from migrations_audit.models import DifferenceSignature

    def breaking(count):
        start = DifferenceSignature.objects.count()
        DifferenceSignature.objects.bulk_create(
            DifferenceSignature(
                upstream=upstream_a,
                signature=f"sig-{index}",
                version_from="2023-06-01",
                version_to="2026-10-21",
                endpoint="POST /v1/messages",
                kind="field_removed",
                path=f"field_{index}",
                classification="breaking",
                count=1,
                exchanges=1,
            )
            for index in range(start, start + count)
        )

    client.force_login(alice)
    url = reverse("migrations_audit:overview", args=[upstream_a.slug])
    record(upstream_a, 3)
    breaking(3)
    with CaptureQueriesContext(connection) as small:
        html = client.get(url).content.decode()
    assert "more on the Differences page" not in html
    breaking(22)
    with CaptureQueriesContext(connection) as large:
        html = client.get(url).content.decode()
    assert len(large) == len(small)
    assert "<dt>Breaking differences confirmed by replay</dt><dd>25</dd>" in html
    assert html.count("<code>field_") == 10
    assert "and 15 more on the Differences page" in html
    assert "/differences/?classification=breaking" in html


def test_overview_names_twenty_affected_clients_and_counts_the_others(client, alice, upstream_a):
    from django.urls import reverse

    from migrations_audit.diff.services import changelog_rules_install, request_findings_check

    changelog_rules_install(upstream=upstream_a)
    rejected = b'{"model": "m", "max_tokens": 5, "messages": [], "temperature": 0.5}'
    for index in range(25):
        record(upstream_a, 1, client=f"svc-{index:02d}", body=rejected)
    # The request check runs after the commit (a task): run it here, as a worker would.
    request_findings_check(exchange_ids=list(Exchange.objects.values_list("pk", flat=True)))
    client.force_login(alice)
    html = client.get(reverse("migrations_audit:overview", args=[upstream_a.slug])).content.decode()
    html = html.split("Clients affected, on their own evidence", 1)[1].split("</section>", 1)[0]
    assert html.count(">svc-") == 20
    assert ">svc-00<" in html and ">svc-19<" in html and ">svc-20<" not in html
    assert "and 5 more on the Clients page" in html


def test_a_ten_megabyte_body_shows_its_head_its_size_and_downloads_whole(
    client, alice, bob, charlie, upstream_a
):
    from django.urls import reverse

    record(upstream_a, 1)
    exchange = Exchange.objects.get()
    items = ",".join(f'{{"n": {index}, "text": "{"x" * 80}"}}' for index in range(120_000))
    big = f'{{"id": "msg_big", "content": [{items}]}}'.encode()[: 10 * 1024 * 1024 - 2] + b"]}"
    assert len(big) == 10 * 1024 * 1024
    Exchange.objects.filter(pk=exchange.pk).update(response_body=big)
    client.force_login(alice)
    page = client.get(
        reverse("migrations_audit:exchange", args=[upstream_a.slug, exchange.pk])
    ).content.decode()
    assert "10.0\xa0MB in all: the first 256.0\xa0KB shown" in page
    assert "{&quot;id&quot;: &quot;msg_big&quot;, &quot;content&quot;: [{&quot;n&quot;: 0" in page
    download = reverse("migrations_audit:exchange_body", args=[upstream_a.slug, exchange.pk])
    assert f'href="{download}?part=response" download' in page
    response = client.get(download, {"part": "response"})
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="exchange-{exchange.pk}-response.body"'
    assert response.content == big
    assert client.get(download, {"part": "request"}).content == bytes(exchange.request_body)
    assert client.get(download, {"part": "secret"}).status_code == 404
    client.force_login(bob)  # a viewer reads what the page shows
    assert client.get(download, {"part": "response"}).content == big
    client.force_login(charlie)
    assert client.get(download, {"part": "response"}).status_code == 404


def test_a_queued_har_import_shows_its_place_and_whether_a_worker_is_alive(client, alice, upstream_a):
    from django.utils import timezone

    from migrations_audit.models import HarImport, WorkerHeartbeat

    def job(state):
        return HarImport.objects.create(upstream=upstream_a, filename="t.har", stored_path="/x", state=state)

    job("done")
    job("running")
    job("queued")
    mine = job("queued")
    client.force_login(alice)
    url = f"/u/{upstream_a.slug}/import/{mine.pk}/"
    page = client.get(url).content.decode()
    assert "Waiting in the queue: 2 imports queued before it are not finished yet." in page
    assert "No worker is running." in page
    WorkerHeartbeat.objects.create(hostname="w1", seen_at=timezone.now())
    HarImport.objects.exclude(pk=mine.pk).update(state="done")
    partial = client.get(url, headers={"HX-Request": "true"}).content.decode()
    assert "Next in the queue" in partial and "No worker is running." not in partial


def test_every_time_shown_says_its_zone():
    """Each template formats a time of day with its zone (T), so no page shows a bare "10:00"."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    bare = []
    for template in [*root.glob("migrations_audit/templates/**/*.html"), *root.glob("templates/**/*.html")]:
        for format_ in re.findall(r'date:"([^"]*)"', template.read_text()):
            if "H:i" in format_ and not format_.endswith(" T"):
                line = next(line for line in template.read_text().splitlines() if f'date:"{format_}"' in line)
                if "UTC" not in line.split(f'date:"{format_}"', 1)[1][:12]:
                    bare.append(f"{template.name}: {format_}")
    assert bare == []


def test_the_traffic_page_names_the_zone_of_its_times(client, alice, traffic):
    client.force_login(alice)
    assert "2026-11-01 00:00:00 UTC" in client.get(f"/u/{traffic.slug}/traffic/").content.decode()
