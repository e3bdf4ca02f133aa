"""HAR import: an uploaded file kept and queued as a job (`har_import_queue`), the job run by a
worker (`har_import_run`), and the import itself (`har_import`, also behind `manage.py import_har`).

Reading the file's entries is capture/ingest.py's work, storing them capture/services.py's: this
module only orchestrates. Each batch is committed on its own, so the job's progress is visible while
it runs and recording goes on meanwhile (on SQLite one long transaction held the write lock for the
whole import); every entry carries its own capture key, so importing a file again, whole or after an
interruption, stores no entry twice.
"""

import hashlib
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import ijson
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from migrations_audit.models import HarImport, Upstream

from .ingest import (
    IngestError,
    IngestSummary,
    batch_store,
    captured_from_har_entry,
    har_entries,
    stream_position,
)
from .recording import CapturedExchange

logger = logging.getLogger(__name__)
# Entries per batch, each committed on its own; the import's progress is written after each.
HAR_BATCH_SIZE = 500


@dataclass
class HarProgress:
    bytes_done: int
    summary: IngestSummary

    @property
    def entries_seen(self) -> int:
        summary = self.summary
        return summary.accepted + summary.duplicates + summary.rejected + summary.skipped


def har_entry_key(entry: dict) -> str:
    """The capture key of a HAR entry: the same entry in another import of the file is stored once."""
    text = json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", errors="replace")).hexdigest()


NOT_HAR = "this is not a HAR file (HAR is JSON exported by a browser or a proxy)"


def har_import(
    *,
    upstream: Upstream,
    stream,
    on_progress: Callable[[HarProgress], None] | None = None,
) -> IngestSummary:
    """Import the entries of a HAR file read as a stream (a 200 MB file is never loaded whole), one
    committed batch at a time.

    A truncated or malformed file raises IngestError saying where it broke; the batches committed
    before it stay, and importing the corrected file adds the rest (entries already stored are
    counted as duplicates, never stored twice).
    """
    summary = IngestSummary()
    prefix = urlsplit(upstream.base_url).path.rstrip("/")
    batch: list[tuple[int, CapturedExchange]] = []
    found: dict = {}
    try:
        for number, entry in har_entries(stream, found=found):
            try:
                if isinstance(entry, IngestError):
                    raise entry
                captured = captured_from_har_entry(entry, upstream_slug=upstream.slug, base_path=prefix)
            except IngestError as error:
                summary.reject(number, str(error))
                continue
            if captured is None:
                summary.skipped += 1
                continue
            captured.capture_key = har_entry_key(entry)
            batch.append((number, captured))
            if len(batch) >= HAR_BATCH_SIZE:
                batch_store(upstream, batch, summary, source="har")
                batch = []
                if on_progress:
                    on_progress(HarProgress(bytes_done=stream_position(stream), summary=summary))
        batch_store(upstream, batch, summary, source="har")
    except ijson.JSONError:
        if not found.get("entries"):
            raise IngestError(NOT_HAR + ": it is not valid JSON; nothing was imported") from None
        kept = f"the {summary.accepted} entries stored before it are kept" if summary.accepted else None
        # In words, never the parser's message (a repr of raw bytes, cut off mid-line).
        raise IngestError(
            f"the HAR file is truncated or not valid JSON near byte {stream_position(stream)}; "
            + (kept or "nothing was imported")
        ) from None
    if not found.get("entries"):
        raise IngestError(NOT_HAR + ": it has no log.entries list; nothing was imported")
    if on_progress:
        on_progress(HarProgress(bytes_done=stream_position(stream), summary=summary))
    return summary


def har_import_queue(*, upstream: Upstream, uploaded, created_by=None) -> HarImport:
    """Keep an uploaded HAR file under MEDIA_ROOT and queue its import; the page polls the job."""
    from migrations_audit.tasks import har_import_run as har_import_task

    target = Path(settings.MEDIA_ROOT) / "har" / f"{uuid.uuid4().hex}.har"
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "wb") as out:
        for chunk in uploaded.chunks():
            out.write(chunk)
    job = HarImport.objects.create(
        upstream=upstream,
        created_by=created_by,
        filename=uploaded.name[:255],
        stored_path=str(target),
        bytes_total=target.stat().st_size,
    )
    transaction.on_commit(lambda: har_import_task.delay(job.pk))
    return job


def har_import_run(*, job_id: int) -> HarImport:
    """Import a queued HAR file, updating the job's progress after each committed batch. Safe to run
    twice; the job always ends done or failed, and the uploaded file is deleted either way."""
    claimed = HarImport.objects.filter(pk=job_id, state=HarImport.State.QUEUED).update(
        state=HarImport.State.RUNNING
    )
    job = HarImport.objects.get(pk=job_id)
    if not claimed:
        if job.state == HarImport.State.RUNNING:
            # Delivered again while it says it is running: the worker that ran it was lost (killed, out
            # of memory). Trying the same file again could lose the next one; the job says so instead.
            _har_import_fail(
                job,
                f"the import stopped: its worker was lost; the {job.stored} entries stored before are "
                "kept, and importing the file again adds the rest without storing any twice",
            )
            Path(job.stored_path).unlink(missing_ok=True)
            job.refresh_from_db()
        return job

    def progress(update: HarProgress) -> None:
        HarImport.objects.filter(pk=job_id).update(
            bytes_done=update.bytes_done,
            entries_seen=update.entries_seen,
            stored=update.summary.accepted,
            duplicates=update.summary.duplicates,
            rejected=update.summary.rejected,
            skipped=update.summary.skipped,
        )

    try:
        with open(job.stored_path, "rb") as stream:
            summary = har_import(upstream=job.upstream, stream=stream, on_progress=progress)
    except (IngestError, OSError) as error:
        _har_import_fail(job, str(error))
    except Exception as error:
        # Whatever it was, the job says it failed rather than "Importing" for ever. Only the type is
        # kept and logged: a message or a traceback's may quote the file, and the file may hold keys.
        logger.error("HAR import %d failed: %s", job_id, type(error).__name__)
        job.refresh_from_db()
        kept = f"the {job.stored} entries stored before are kept" if job.stored else "nothing was imported"
        _har_import_fail(job, f"the import failed ({type(error).__name__}); {kept}")
    else:
        HarImport.objects.filter(pk=job_id).update(
            state=HarImport.State.DONE,
            bytes_done=job.bytes_total,
            entries_seen=HarProgress(bytes_done=0, summary=summary).entries_seen,
            stored=summary.accepted,
            duplicates=summary.duplicates,
            rejected=summary.rejected,
            skipped=summary.skipped,
            error="\n".join(f"entry {r['line']}: {r['reason']}" for r in summary.rejections[:50]),
            finished_at=timezone.now(),
        )
    finally:
        # Imported or failed, the upload goes: it holds the clients' raw keys.
        Path(job.stored_path).unlink(missing_ok=True)
    job.refresh_from_db()
    return job


def _har_import_fail(job: HarImport, message: str) -> None:
    # The progress written after each committed batch stays: those entries are stored.
    HarImport.objects.filter(pk=job.pk).update(
        state=HarImport.State.FAILED, error=message, finished_at=timezone.now()
    )
