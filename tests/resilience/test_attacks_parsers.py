"""Issue 16, against the parsers and the recorder: hostile NDJSON, HAR files and bodies are refused or
stored alone, with a reason, in bounded memory, and never stop the good traffic around them."""

import asyncio
import json
import select
import socket
import time
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from migrations_audit import services
from migrations_audit.capture import proxy as proxy_module
from migrations_audit.capture.har import har_import_run
from migrations_audit.capture.ingest import ndjson_ingest
from migrations_audit.capture.recording import CapturedExchange
from migrations_audit.models import Exchange, HarImport
from tests.capture.test_har import entry, har
from tests.capture.test_ingest import URL, line, post
from tests.capture.test_proxy import proxy, recorded  # noqa: F401 - the proxy fixture, real processes
from tests.conftest import child_env
from tests.resilience.test_recorder import captured, run
from tests.support.servers import free_port, running

MB = 1024 * 1024
DEEP = 1200  # past Python's stack for a recursive walk, within what json.loads decodes


def deep_array(depth: int) -> str:
    return "[" * depth + "]" * depth


def wait_for(condition, *, timeout: float = 60, message: str = ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(message or "condition not met in time")


@pytest.fixture
def token(team_a):
    return services.api_token_create(team=team_a, name="attacks")[1]


# --- Item 4: nesting takes a worker's memory ---------------------------------------------------------


def worker_child(worker) -> int:
    pid = worker.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def peak_rss_mb(pid: int) -> float:
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith("VmHWM:"):
            return int(row.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def upload_har(client, upstream, data: bytes, name: str = "traffic.har") -> HarImport:
    response = client.post(
        reverse("migrations_audit:har_imports", args=[upstream.slug]),
        {"har": SimpleUploadedFile(name, data, content_type="application/json")},
    )
    assert response.status_code == 302, response.status_code
    return HarImport.objects.latest("pk")


def finished(job: HarImport) -> HarImport | None:
    job.refresh_from_db()
    return job if job.state in (HarImport.State.DONE, HarImport.State.FAILED) else None


@pytest.mark.slow
def test_a_har_of_deeply_nested_arrays_is_refused_by_its_entry_in_bounded_worker_memory(
    worker_factory, client, alice, upstream_a
):
    """20,000 nested arrays (40 KB) took the import to about 1 GB (100,000 took 5 GB): the entry is
    rejected with its reason, the good one is stored, and the worker's child stays small."""
    worker = worker_factory(concurrency=1)
    child = worker_child(worker)
    Path(f"/proc/{child}/clear_refs").write_text("5")  # its peak RSS counted from now
    hostile = {**entry(path="/v1/messages"), "request": {**entry()["request"], "nested": None}}
    text = har(entry(), hostile).decode().replace('"nested": null', f'"nested": {deep_array(20_000)}')
    client.force_login(alice)
    job = upload_har(client, upstream_a, text.encode())
    job = wait_for(lambda: finished(job), message="the import never finished")
    peak = peak_rss_mb(child)
    assert job.state == HarImport.State.DONE, job.error
    assert (job.stored, job.rejected) == (1, 1)
    assert "entry 2: entry nested deeper than 100 levels" in job.error
    assert peak < 300, f"the worker's child peaked at {peak:.0f} MB"


def test_ndjson_lines_nested_past_the_limit_are_rejected_alone(client, upstream_a, token):
    body = b"\n".join(
        [line(), line(path="/v1/deep", request_body=json.loads(deep_array(150))), line(path="/v1/b")]
    )
    result = post(client, upstream_a.slug, body, token).json()
    assert (result["accepted"], result["rejected"]) == (2, 1)
    assert result["rejections"] == [
        {"line": 2, "reason": "nested deeper than 100 levels (MIGRATION_AUDIT_MAX_JSON_DEPTH)"}
    ]


# --- Item 8: one poisoned request stalls recording for everyone ---------------------------------------


def test_an_exchange_that_cannot_be_stored_fails_alone_and_at_once(monkeypatch):
    """The recorder waits out a database outage, but an error of one exchange is not one: it is
    counted as failed at once and the rest of its batch is stored (no retry delays are shortened)."""
    written = []

    def store(by_upstream):
        for items in by_upstream.values():
            if any(item.path == "/v1/poison" for item in items):
                raise RecursionError("maximum recursion depth exceeded")
            written.extend(items)

    monkeypatch.setattr(proxy_module, "_store", store)
    poison = CapturedExchange(
        method="POST",
        path="/v1/poison",
        request_headers={},
        request_body=b"{}",
        started_at=captured(0).started_at,
    )

    async def scenario():
        recorder = proxy_module.Recorder()
        for item in (captured(1), poison, captured(2), captured(3)):
            recorder.submit(1, item)
        await asyncio.wait_for(recorder.flush(), timeout=10)
        return recorder.counts()

    counts = run(scenario())
    assert sorted(item.path for item in written) == ["/v1/messages/1", "/v1/messages/2", "/v1/messages/3"]
    assert counts == {"recorded": 3, "pending": 0, "dropped": 0, "failed": 1}


@pytest.mark.slow
def test_a_deep_body_naming_a_secret_field_through_the_proxy_stalls_nobody(proxy):  # noqa: F811
    """A JSON body nested 1,200 deep with a `token` field made the masker raise RecursionError, which
    the recorder took for a database outage: it stopped for two minutes, then gave up on the innocent
    exchanges of the batch. Now the deep body is stored masked and the others at once."""
    headers = {
        "anthropic-version": "2023-06-01",
        "x-api-key": "sk-ant-attacks-key",
        "content-type": "application/json",
    }
    body = "[" * DEEP + '{"token": "sk-ant-deep-secret"}' + "]" * DEEP
    httpx.post(f"{proxy['prefix']}/v1/messages", headers=headers, content=body, timeout=10)
    good = {"model": "claude-sonnet-4-5", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    for _ in range(3):
        assert (
            httpx.post(f"{proxy['prefix']}/v1/messages", headers=headers, json=good, timeout=10).status_code
            == 200
        )
    rows = recorded(4, timeout=30)  # the retries of an "outage" last about two minutes
    deep = rows[0]
    assert bytes(deep.request_body).startswith(b"[masked: a JSON body nested deeper")
    stored = b"".join(bytes(row.request_body) for row in rows)
    assert b"sk-ant-deep-secret" not in stored
    # The rows are visible once committed; the recorder counts them when its write returns.
    health_url = proxy["prefix"].split("/proxy/")[0] + "/__audit/healthz"
    deadline = time.monotonic() + 30
    while (health := httpx.get(health_url, timeout=5).json())["pending"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert (health["recorded"], health["failed"], health["pending"]) == (4, 0, 0)


# --- Item 11: one bad ingest line or HAR entry sinks the good ones -----------------------------------


def test_a_line_with_a_time_before_the_first_is_rejected_alone(client, upstream_a, token):
    lines = [line(path=f"/v1/p{n}") for n in range(6)]
    lines[3] = line(path="/v1/p3", started_at="0001-01-01T00:00:00+05:00")
    response = post(client, upstream_a.slug, b"\n".join(lines), token)
    assert response.status_code == 200
    result = response.json()
    assert (result["accepted"], result["rejected"]) == (5, 1)
    assert result["rejections"][0]["line"] == 4
    assert "started_at is out of range" in result["rejections"][0]["reason"]
    assert Exchange.objects.count() == 5


def test_a_line_the_database_cannot_take_is_rejected_alone(upstream_a, monkeypatch):
    """Whatever makes one exchange fail to store (here a poisoned body), the rest of its batch is kept."""
    from migrations_audit.capture import recording

    real = recording.mask_message

    def poisoned(*, headers, body, events=None):
        if b"poison" in body:
            raise RecursionError("maximum recursion depth exceeded")
        return real(headers=headers, body=body, events=events)

    monkeypatch.setattr(recording, "mask_message", poisoned)
    lines = [line(path="/v1/a"), line(path="/v1/b", request_body="poison"), line(path="/v1/c")]
    summary = ndjson_ingest(upstream=upstream_a, lines=lines)
    assert (summary.accepted, summary.rejected) == (2, 1)
    assert summary.rejections == [{"line": 2, "reason": "could not be stored (RecursionError)"}]


BAD_ENTRIES = [
    (
        {**entry(path="/v1/a"), "request": {**entry()["request"], "headers": 5}},
        "request headers must be a list",
    ),
    ({**entry(path="/v1/b"), "response": "oops"}, "response must be an object"),
    (
        {**entry(path="/v1/c"), "request": {**entry()["request"], "postData": [1]}},
        "request postData must be an object",
    ),
]


@pytest.mark.slow
def test_bad_har_entries_are_rejected_alone_and_the_upload_is_deleted(
    celery_worker, client, alice, upstream_a
):
    client.force_login(alice)
    job = upload_har(client, upstream_a, har(entry(), *(bad for bad, _ in BAD_ENTRIES)))
    stored_path = Path(job.stored_path)
    job = wait_for(lambda: finished(job), message="the job still says Importing")
    assert job.state == HarImport.State.DONE, job.error
    assert (job.stored, job.rejected) == (1, 3)
    for number, (_, reason) in enumerate(BAD_ENTRIES, start=2):
        assert f"entry {number}: {reason}" in job.error
    assert not stored_path.exists(), "the upload, raw keys included, is gone"
    page = client.get(reverse("migrations_audit:har_import", args=[upstream_a.slug, job.pk])).content.decode()
    assert "Done" in page and "request headers must be a list" in page


def test_a_job_that_fails_says_so_and_deletes_its_upload(
    client, alice, upstream_a, monkeypatch, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    client.force_login(alice)
    job = upload_har(client, upstream_a, har(entry()))
    stored_path = Path(job.stored_path)
    assert stored_path.exists()

    def broken_import(**kwargs):
        raise KeyError("sk-ant-quoted-in-an-error")

    monkeypatch.setattr("migrations_audit.capture.har.har_import", broken_import)
    job = har_import_run(job_id=job.pk)
    assert job.state == HarImport.State.FAILED
    assert job.error == "the import failed (KeyError); nothing was imported"
    assert not stored_path.exists()
    page = client.get(reverse("migrations_audit:har_import", args=[upstream_a.slug, job.pk])).content.decode()
    assert "Failed" in page and "the import failed (KeyError)" in page and "sk-ant-quoted" not in page


# --- Item 16: an exchange nested 1,200 deep answers 500 on its page ----------------------------------


def test_an_exchange_nested_past_the_limit_is_shown_as_text(client, alice, upstream_a):
    deep = deep_array(DEEP)
    ndjson_ingest(upstream=upstream_a, lines=[line(request_body=deep, response_body=deep)])
    exchange = Exchange.objects.get()
    client.force_login(alice)
    response = client.get(reverse("migrations_audit:exchange", args=[upstream_a.slug, exchange.pk]))
    assert response.status_code == 200
    assert deep in response.content.decode(), "shown as the text it is"


# --- Item 17: one 100 MB line takes the web process to 541 MB ----------------------------------------


@pytest.fixture
def web(transactional_db, upstream_a, token, tmp_path):
    """The dashboard's ASGI app as a real process; MIGRATION_AUDIT_MAX_INGEST_BYTES is 120 MB."""

    def start(**env):
        port = free_port()
        log = open(tmp_path / f"web-{port}.log", "w")  # noqa: SIM115 - closed when the test ends
        server = running(
            [
                "-m",
                "uvicorn",
                "--host",
                "127.0.0.1",
                "--no-access-log",
                "dashboard.asgi:application",
                "--port",
                str(port),
            ],
            env=child_env(**env),
            log=log,
            ready_url=f"http://127.0.0.1:{port}/healthz",
        )
        return server, port

    return start


@pytest.mark.slow
def test_a_100_mb_line_is_rejected_alone_in_bounded_memory(web, upstream_a, token):
    server, port = web()
    with server as process:
        lines = [line(path="/v1/a"), line(path="/v1/huge", request_body="x" * (100 * MB)), line(path="/v1/b")]
        response = httpx.post(
            f"http://127.0.0.1:{port}{URL.format(slug=upstream_a.slug)}",
            content=b"\n".join(lines),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"},
            timeout=120,
        )
        peak = peak_rss_mb(process.pid)
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["accepted"], result["rejected"]) == (2, 1)
    limit = settings.MIGRATION_AUDIT_MAX_BODY_BYTES
    assert result["rejections"] == [
        {"line": 2, "reason": f"the line is longer than {limit} bytes (MIGRATION_AUDIT_MAX_BODY_BYTES)"}
    ]
    assert peak < 300, f"the web process peaked at {peak:.0f} MB"


def raw_post(port: int, head: str, body_chunks=()) -> bytes:
    """Send a request head (and some body) over a socket and read the answer, without sending the rest."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as connection:
        connection.sendall(head.encode())
        for chunk in body_chunks:
            if select.select([connection], [], [], 0.05)[0]:
                break  # answered: the rest is not sent
            connection.sendall(chunk)
        answer = b""
        while data := connection.recv(65536):  # the answer closes the connection
            answer += data
        return answer


@pytest.mark.slow
def test_an_ingest_body_past_the_request_limit_is_refused_before_it_is_read(web, upstream_a, token):
    server, port = web(MIGRATION_AUDIT_MAX_INGEST_BYTES=MB)
    path = URL.format(slug=upstream_a.slug)
    auth = f"Authorization: Bearer {token}\r\nContent-Type: application/x-ndjson\r\n"
    with server:
        declared = raw_post(
            port, f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Length: {100 * MB}\r\n\r\n"
        )
        assert declared.split(b" ")[1] == b"413", declared[:200]
        chunk = b"x" * (64 * 1024)
        chunked = raw_post(
            port,
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Transfer-Encoding: chunked\r\n\r\n",
            [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * 20,  # 1.25 MB, never finished
        )
        assert chunked.split(b" ")[1] == b"413", chunked[:200]
        assert b"MIGRATION_AUDIT_MAX_INGEST_BYTES" in chunked
    assert not Exchange.objects.exists()
