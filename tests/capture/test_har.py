"""HAR import: browsers' and mitmproxy's files, streams included; bad files refused whole."""

import io
import json
import tracemalloc

import pytest
from django.core.management import CommandError, call_command

from migrations_audit.capture.har import har_import
from migrations_audit.capture.ingest import IngestError
from migrations_audit.models import Exchange

SSE = 'event: completion\r\ndata: {"completion": " Hi", "stop_reason": null}\r\n\r\n'


def entry(path="/v1/complete", *, sse=False, version="2023-06-01", key="sk-ant-har-secret"):
    return {
        "startedDateTime": "2026-11-20T10:00:00.000Z",
        "time": 321.5,
        "request": {
            "method": "POST",
            "url": f"https://api.anthropic.com{path}",
            "headers": [
                {"name": "x-api-key", "value": key},
                {"name": "anthropic-version", "value": version},
                {"name": ":authority", "value": "api.anthropic.com"},
            ],
            "postData": {"mimeType": "application/json", "text": json.dumps({"prompt": "hi", "stream": sse})},
        },
        "response": {
            "status": 200,
            "headers": [
                {"name": "content-type", "value": "text/event-stream" if sse else "application/json"}
            ],
            "content": {
                "mimeType": "text/event-stream" if sse else "application/json",
                "text": SSE if sse else '{"completion": " Hi"}',
            },
        },
    }


def har(*entries) -> bytes:
    return json.dumps(
        {"log": {"version": "1.2", "creator": {"name": "test"}, "entries": list(entries)}}
    ).encode()


def test_api_calls_are_imported_with_streams_and_no_secret(upstream_a):
    page = {**entry(), "request": {**entry()["request"], "url": "https://example.com/index.html"}}
    summary = har_import(upstream=upstream_a, stream=io.BytesIO(har(entry(), entry(sse=True), page)))
    assert (summary.accepted, summary.skipped) == (2, 1)
    streamed = Exchange.objects.get(streamed=True)
    assert streamed.response_events[0]["event"] == "completion"
    assert bytes(streamed.response_body).decode() == SSE
    assert ":authority" not in streamed.request_headers
    for exchange in Exchange.objects.all():
        assert "sk-ant-har-secret" not in json.dumps(exchange.request_headers)
        assert exchange.source == "har"


def test_reimport_counts_duplicates(upstream_a):
    har_import(upstream=upstream_a, stream=io.BytesIO(har(entry())))
    summary = har_import(upstream=upstream_a, stream=io.BytesIO(har(entry())))
    assert (summary.accepted, summary.duplicates) == (0, 1)
    assert Exchange.objects.count() == 1


def test_a_bad_entry_is_rejected_and_the_good_ones_kept(upstream_a):
    bad = {"request": {"method": "POST"}}
    summary = har_import(upstream=upstream_a, stream=io.BytesIO(har(entry(), bad)))
    assert summary.accepted == 1
    assert summary.rejections == [{"line": 2, "reason": "entry request needs a url and a method"}]


def test_a_truncated_file_imports_nothing(upstream_a):
    data = har(entry(), entry(sse=True), entry(path="/v1/messages"))
    with pytest.raises(IngestError, match="truncated or not valid JSON"):
        har_import(upstream=upstream_a, stream=io.BytesIO(data[: len(data) - 40]))
    assert not Exchange.objects.exists()


def test_import_har_command(upstream_a, tmp_path, capsys):
    path = tmp_path / "traffic.har"
    path.write_bytes(har(entry(), entry(sse=True)))
    call_command("import_har", str(path), "--upstream", upstream_a.slug)
    assert "Imported 2 exchanges" in capsys.readouterr().out
    with pytest.raises(CommandError, match="No upstream"):
        call_command("import_har", str(path), "--upstream", "nope")
    with pytest.raises(CommandError, match="Cannot read"):
        call_command("import_har", str(tmp_path / "missing.har"), "--upstream", upstream_a.slug)


@pytest.mark.slow
def test_a_200_mb_har_is_streamed_in_bounded_memory(upstream_a, tmp_path):
    """Mostly large non-API entries (as a browser's HAR has: pages, images) plus 2,000 API calls."""
    path = tmp_path / "big.har"
    filler = {
        **entry(),
        "request": {**entry()["request"], "url": "https://example.com/image.png"},
        "response": {
            "status": 200,
            "headers": [],
            "content": {"mimeType": "image/png", "text": "A" * 100_000},
        },
    }
    filler_json = json.dumps(filler)
    with open(path, "w") as out:
        out.write('{"log": {"version": "1.2", "entries": [')
        for index in range(2000):
            out.write(json.dumps(entry(path=f"/v1/complete?n={index}", version="2023-06-01")) + ",")
            out.write(",".join([filler_json] * 1) + ("," if index < 1999 else ""))
        out.write("]}}")
    size = path.stat().st_size
    assert size > 200_000_000
    tracemalloc.start()
    with open(path, "rb") as stream:
        summary = har_import(upstream=upstream_a, stream=stream)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert summary.skipped == 2000
    assert summary.accepted + summary.duplicates == 2000
    assert peak < 64 * 1024 * 1024, f"peak {peak / 1e6:.0f} MB while importing {size / 1e6:.0f} MB"


def test_a_job_whose_worker_was_lost_ends_failed_and_its_upload_is_deleted(upstream_a, tmp_path):
    """acks_late delivers the task again after its worker was killed (out of memory, say): the job
    said "Importing" for ever and kept the file, raw keys included."""
    from migrations_audit.capture.har import har_import_run
    from migrations_audit.models import HarImport

    upload = tmp_path / "lost.har"
    upload.write_bytes(har(entry()))
    job = HarImport.objects.create(
        upstream=upstream_a, filename="lost.har", stored_path=str(upload), state=HarImport.State.RUNNING
    )
    job = har_import_run(job_id=job.pk)
    assert job.state == HarImport.State.FAILED
    assert "its worker was lost" in job.error
    assert not upload.exists()
    done = HarImport.objects.create(upstream=upstream_a, filename="done.har", stored_path="", state="done")
    assert har_import_run(job_id=done.pk).state == HarImport.State.DONE, "a finished job is left as it is"


def numbered_entries(count: int) -> list[dict]:
    entries = []
    for n in range(count):
        numbered = entry()
        numbered["request"]["postData"]["text"] = json.dumps({"prompt": f"question {n}"})
        entries.append(numbered)
    return entries


def test_progress_is_committed_per_batch_and_recording_goes_on(
    transactional_db, upstream_a, tmp_path, monkeypatch
):
    """While an import runs, another connection sees its progress and the entries stored so far, and
    records an exchange of its own (on SQLite a whole-file transaction held the write lock)."""
    import threading

    from django.db import connection

    from migrations_audit.capture import har as har_module
    from migrations_audit.capture.recording import CapturedExchange
    from migrations_audit.capture.services import exchanges_record
    from migrations_audit.models import HarImport

    monkeypatch.setattr(har_module, "HAR_BATCH_SIZE", 2)
    upload = tmp_path / "six.har"
    upload.write_bytes(har(*numbered_entries(6)))
    job = HarImport.objects.create(upstream=upstream_a, filename="six.har", stored_path=str(upload))
    paused, resume = threading.Event(), threading.Event()
    real_store = har_module.batch_store

    def store_pausing_before_the_second_batch(upstream, batch, summary, *, source):
        if summary.accepted == 2 and batch:
            paused.set()
            assert resume.wait(timeout=60), "the test never resumed the import"
        real_store(upstream, batch, summary, source=source)

    monkeypatch.setattr(har_module, "batch_store", store_pausing_before_the_second_batch)

    def run_import():
        try:
            har_module.har_import_run(job_id=job.pk)
        finally:
            connection.close()

    worker = threading.Thread(target=run_import)
    worker.start()
    try:
        assert paused.wait(timeout=60), "the import never reached its second batch"
        # This thread has a connection of its own: it sees only what the import committed.
        running = HarImport.objects.get(pk=job.pk)
        assert running.state == HarImport.State.RUNNING
        assert (running.stored, running.entries_seen) == (2, 2)
        assert running.bytes_done > 0  # read ahead in 64 KB buffers: the whole of this small file
        assert Exchange.objects.filter(source="har").count() == 2
        recorded = exchanges_record(
            upstream=upstream_a,
            captured=[
                CapturedExchange(
                    method="POST",
                    path="/v1/messages",
                    request_headers={},
                    request_body=b"{}",
                    started_at=running.created_at,
                )
            ],
            source="proxy",
        )
        assert recorded.stored == 1, "recording goes on while the import runs"
    finally:
        resume.set()
        worker.join(timeout=60)
    done = HarImport.objects.get(pk=job.pk)
    assert (done.state, done.stored, done.entries_seen) == (HarImport.State.DONE, 6, 6)
    assert Exchange.objects.filter(source="har").count() == 6


def test_an_import_started_again_stores_no_entry_twice(upstream_a, monkeypatch):
    """A file that breaks after a committed batch keeps that batch; importing the whole file again adds
    the rest, and the entries stored the first time are counted as duplicates."""
    from migrations_audit.capture import har as har_module

    monkeypatch.setattr(har_module, "HAR_BATCH_SIZE", 2)
    data = har(*numbered_entries(5))
    # Cut inside the fifth entry: the two batches before it are committed.
    with pytest.raises(IngestError, match="the 4 entries stored before it are kept"):
        har_import(upstream=upstream_a, stream=io.BytesIO(data[: len(data) - 40]))
    assert Exchange.objects.count() == 4
    summary = har_import(upstream=upstream_a, stream=io.BytesIO(data))
    assert (summary.accepted, summary.duplicates) == (1, 4)
    again = har_import(upstream=upstream_a, stream=io.BytesIO(data))
    assert (again.accepted, again.duplicates) == (0, 5)
    assert Exchange.objects.count() == 5


def test_a_text_file_is_no_har_file_and_the_page_says_so_whole(client, alice, upstream_a, settings, tmp_path):
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.urls import reverse

    from migrations_audit.capture.har import har_import_run

    settings.MEDIA_ROOT = tmp_path
    client.force_login(alice)
    text = b"GET /v1/models HTTP/1.1\nHost: api.anthropic.com\n" * 50
    response = client.post(
        reverse("migrations_audit:har_imports", args=[upstream_a.slug]),
        {"har": SimpleUploadedFile("notes.txt", text, content_type="text/plain")},
    )
    job_id = int(response.url.rstrip("/").rsplit("/", 1)[1])
    job = har_import_run(job_id=job_id)
    expected = (
        "this is not a HAR file (HAR is JSON exported by a browser or a proxy): it is not valid JSON; "
        "nothing was imported"
    )
    assert job.error == expected
    page = client.get(response.url).content.decode()
    assert (
        "(HAR is JSON exported by a browser or a proxy): it is not valid JSON; nothing was imported" in page
    )
    assert "b&#x27;" not in page and "b'" not in page


@pytest.mark.parametrize("data", [b'{"log": {"version": "1.2"}}', b"[1, 2]", b'"text"'])
def test_json_that_is_no_har_imports_nothing_and_says_why(upstream_a, data):
    with pytest.raises(IngestError, match=r"this is not a HAR file .*: it has no log.entries list"):
        har_import(upstream=upstream_a, stream=io.BytesIO(data))


def test_an_empty_har_file_is_a_har_file(upstream_a):
    summary = har_import(upstream=upstream_a, stream=io.BytesIO(b'{"log": {"entries": []}}'))
    assert summary.accepted == 0
