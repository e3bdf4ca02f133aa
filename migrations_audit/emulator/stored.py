"""The endpoints with state: Message Batches and the Files API (shapes of the `anthropic` SDK 2.15.0 types
MessageBatch, MessageBatchIndividualResponse, FileMetadata, DeletedFile)."""

import json
import mimetypes
import time
from datetime import UTC, datetime
from email.parser import BytesParser
from email.policy import HTTP

from . import core
from .core import ApiError, Call, EmulatedResponse
from .state import Batch, StoredFile, paginate

BATCH_LIFETIME_SECONDS = 24 * 3600
MAX_BATCH_REQUESTS = 100_000


def _stamp(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _page(items, call: Call, render) -> EmulatedResponse:
    try:
        page, has_more = paginate(items, id_of=lambda item: item.id, params=call.query)
    except ValueError as error:
        raise ApiError(400, "invalid_request_error", str(error)) from None
    data = [render(item, call) for item in page]
    return core._json_response(
        {
            "data": data,
            "has_more": has_more,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }
    )


# --- Message Batches ----------------------------------------------------------------------------


def batch_create(call: Call) -> EmulatedResponse:
    request = call.json()
    requests = core._field(request, "requests", list, description="a valid list")
    if not requests or len(requests) > MAX_BATCH_REQUESTS:
        raise ApiError(400, "invalid_request_error", "requests: between 1 and 100000 requests are required")
    seen = set()
    for index, item in enumerate(requests):
        if not isinstance(item, dict) or not isinstance(item.get("params"), dict):
            raise ApiError(400, "invalid_request_error", f"requests.{index}.params: Field required")
        custom_id = item.get("custom_id")
        if not isinstance(custom_id, str) or not custom_id:
            raise ApiError(400, "invalid_request_error", f"requests.{index}.custom_id: Field required")
        if custom_id in seen:
            raise ApiError(
                400, "invalid_request_error", f"requests.{index}.custom_id: duplicate custom_id {custom_id!r}"
            )
        seen.add(custom_id)
    batch = Batch(id=core.new_id("msgbatch_"), created_at=time.time(), version=call.version)
    # Each request is answered as a Messages request of the batch's version; the answers are ready
    # when the batch ends (`--batch-seconds` after its creation).
    for item in requests:
        batch.results.append({"custom_id": item["custom_id"], "result": _batch_result(item["params"], call)})
    call.state.add_batch(batch)
    return core._json_response(_batch_object(batch, call, ended=False))


def _batch_result(params: dict, call: Call) -> dict:
    try:
        params = {key: value for key, value in params.items() if key != "stream"}
        model, max_tokens, messages = core._messages_request(
            params, version=call.version, needs_max_tokens=True, as_of=call.as_of
        )
        message, _, _ = core._message_answer(params, model, max_tokens, messages, call, tier="batch")
    except ApiError as error:
        return {
            "type": "errored",
            "error": {
                "type": "error",
                "error": {"type": error.error_type, "message": error.message},
                "request_id": core.new_id("req_"),
            },
        }
    return {"type": "succeeded", "message": message}


def _batch_ended(batch: Batch, call: Call) -> bool:
    return batch.canceled_at is not None or time.time() >= batch.created_at + call.options.batch_seconds


def _batch_object(batch: Batch, call: Call, *, ended: bool | None = None) -> dict:
    ended = _batch_ended(batch, call) if ended is None else ended
    kinds = [line["result"]["type"] for line in batch.results]
    counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
    if not ended:
        counts["processing"] = len(kinds)
    elif batch.canceled_at is not None:
        counts["canceled"] = len(kinds)
    else:
        for kind in kinds:
            counts[kind] += 1
    host = call.headers.get("host", "127.0.0.1")
    status = "ended" if ended else ("canceling" if batch.canceled_at is not None else "in_progress")
    return {
        "id": batch.id,
        "type": "message_batch",
        "processing_status": status,
        "request_counts": counts,
        "ended_at": _stamp(max(batch.created_at + call.options.batch_seconds, batch.canceled_at or 0))
        if ended
        else None,
        "created_at": _stamp(batch.created_at),
        "expires_at": _stamp(batch.created_at + BATCH_LIFETIME_SECONDS),
        "archived_at": None,
        "cancel_initiated_at": _stamp(batch.canceled_at),
        # An absolute URL, as the API gives; the SDK follows it as it is, so it names this server.
        "results_url": f"http://{host}/v1/messages/batches/{batch.id}/results" if ended else None,
    }


def _batch(call: Call) -> Batch:
    batch = call.state.batches.get(call.path_params[0])
    if batch is None:
        raise ApiError(404, "not_found_error", f"message batch not found: {call.path_params[0]}")
    return batch


def batch_retrieve(call: Call) -> EmulatedResponse:
    return core._json_response(_batch_object(_batch(call), call))


def batch_list(call: Call) -> EmulatedResponse:
    newest_first = list(reversed(call.state.batches.values()))
    return _page(newest_first, call, _batch_object)


def batch_cancel(call: Call) -> EmulatedResponse:
    batch = _batch(call)
    if not _batch_ended(batch, call):
        batch.canceled_at = time.time()
    return core._json_response(_batch_object(batch, call))


def batch_delete(call: Call) -> EmulatedResponse:
    batch = _batch(call)
    if not _batch_ended(batch, call):
        raise ApiError(400, "invalid_request_error", "A batch that is still processing cannot be deleted.")
    call.state.delete_batch(batch.id)
    return core._json_response({"id": batch.id, "type": "message_batch_deleted"})


def batch_results(call: Call) -> EmulatedResponse:
    """The results as JSONL, one line per request, in the order of the requests."""
    batch = _batch(call)
    if not _batch_ended(batch, call):
        raise ApiError(404, "not_found_error", f"results of message batch {batch.id} are not ready")
    lines = batch.results
    if batch.canceled_at is not None:
        lines = [{"custom_id": line["custom_id"], "result": {"type": "canceled"}} for line in lines]
    body = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode()
    return EmulatedResponse(status=200, headers=[("content-type", "application/binary")], body=body)


# --- Files --------------------------------------------------------------------------------------


def file_upload(call: Call) -> EmulatedResponse:
    """A multipart/form-data upload with one `file` part."""
    if call.body_too_large or len(call.body) > call.options.max_body_bytes:
        raise ApiError(413, "request_too_large", "Request exceeds the maximum allowed number of bytes.")
    content_type = call.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise ApiError(
            400, "invalid_request_error", "The request must be multipart/form-data with a `file` part."
        )
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode("latin-1") + call.body
    )
    part = (
        next(
            (p for p in message.iter_parts() if p.get_param("name", header="content-disposition") == "file"),
            None,
        )
        if message.is_multipart()
        else None
    )
    if part is None:
        raise ApiError(400, "invalid_request_error", "file: Field required")
    filename = part.get_filename() or "upload"
    mime_type = part.get_content_type()
    if mime_type in ("text/plain", "application/octet-stream") and not part.get("content-type"):
        mime_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    stored = StoredFile(
        id=core.new_id("file_"),
        filename=filename,
        mime_type=mime_type,
        content=part.get_payload(decode=True) or b"",
        created_at=time.time(),
    )
    call.state.add_file(stored)
    return core._json_response(_file_object(stored, call))


def _file_object(stored: StoredFile, call: Call) -> dict:
    return {
        "type": "file",
        "id": stored.id,
        "filename": stored.filename,
        "mime_type": stored.mime_type,
        "size_bytes": len(stored.content),
        "created_at": _stamp(stored.created_at),
        "downloadable": True,
    }


def _file(call: Call) -> StoredFile:
    stored = call.state.files.get(call.path_params[0])
    if stored is None:
        raise ApiError(404, "not_found_error", f"File not found: {call.path_params[0]}")
    return stored


def file_metadata(call: Call) -> EmulatedResponse:
    return core._json_response(_file_object(_file(call), call))


def file_list(call: Call) -> EmulatedResponse:
    return _page(list(reversed(call.state.files.values())), call, _file_object)


def file_content(call: Call) -> EmulatedResponse:
    stored = _file(call)
    return EmulatedResponse(
        status=200,
        headers=[
            ("content-type", stored.mime_type),
            ("content-disposition", f'attachment; filename="{_header_safe(stored.filename)}"'),
        ],
        body=stored.content,
    )


def _header_safe(name: str) -> str:
    """The file name as a header may carry it: printable ASCII without quotes or backslashes."""
    return "".join(c if " " <= c <= "~" and c not in '"\\' else "_" for c in name)


def file_delete(call: Call) -> EmulatedResponse:
    stored = _file(call)
    call.state.delete_file(stored.id)
    return core._json_response({"id": stored.id, "type": "file_deleted"})
