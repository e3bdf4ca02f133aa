"""What the Anthropic API answers, version by version, as a pure function of the request.

Facts from shared/reference/anthropic-versions.md. Where the reference is silent, the choice is
documented in README.md beside this file.
"""

import functools
import json
import os
import secrets
import string
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .text import generate_pieces, request_rng, rough_token_count

VERSIONS = ("2023-01-01", "2023-06-01", "2026-10-21")
LEGACY = "2023-01-01"
SAMPLING_REMOVED_IN = "2026-10-21"
MODELS = (
    ("claude-opus-4-1", "Claude Opus 4.1"),
    ("claude-opus-4-1-20250805", "Claude Opus 4.1"),
    ("claude-sonnet-4-5", "Claude Sonnet 4.5"),
    ("claude-sonnet-4-5-20250929", "Claude Sonnet 4.5"),
    ("claude-haiku-4-5", "Claude Haiku 4.5"),
    ("claude-haiku-4-5-20251001", "Claude Haiku 4.5"),
    ("claude-3-7-sonnet-20250219", "Claude Sonnet 3.7"),
    ("claude-3-5-sonnet-20241022", "Claude Sonnet 3.5"),
    ("claude-3-5-haiku-20241022", "Claude Haiku 3.5"),
    ("claude-3-opus-20240229", "Claude Opus 3"),
    ("claude-3-haiku-20240307", "Claude Haiku 3"),
    ("claude-2.1", "Claude 2.1"),
    ("claude-2.0", "Claude 2.0"),
    ("claude-2", "Claude 2"),
    ("claude-instant-1.2", "Claude Instant 1.2"),
    ("claude-instant-1", "Claude Instant 1"),
    ("claude-instant-v1", "Claude Instant v1"),
    ("claude-v1", "Claude v1"),
    ("claude-v1.3", "Claude v1.3"),
)
MODEL_IDS = frozenset(model for model, _ in MODELS)
FAULTS = ("rate_limit", "overloaded", "server_error", "stream_error", "drop", "malformed_stream")
_ALPHABET = string.ascii_letters + string.digits
# Random bytes to id characters in one `translate`: choosing each character apart took half of the
# time of a whole JSON answer. The slight bias of `% 62` does not matter for ids that only must vary.
_ID_CHARACTERS = bytes(ord(_ALPHABET[byte % len(_ALPHABET)]) for byte in range(256))


@dataclass(frozen=True)
class EmulatorOptions:
    seed: int = 0
    vary: bool = False
    max_body_bytes: int = 32 * 1024 * 1024
    api_keys: frozenset[str] = frozenset()  # empty: any non-empty key is accepted
    retry_after_seconds: int = 1


@dataclass
class EmulatedResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""
    # For a stream: each event's bytes, sent one by one.
    events: list[bytes] | None = None
    # Close the connection after this many events (or mid-body for JSON): a dropped connection.
    drop_after: int | None = None
    meta: dict = field(default_factory=dict)

    @property
    def streamed(self) -> bool:
        return self.events is not None

    def full_body(self) -> bytes:
        return b"".join(self.events) if self.events is not None else self.body


class ApiError(Exception):
    def __init__(self, status: int, error_type: str, message: str, headers: list[tuple[str, str]] = ()):
        super().__init__(message)
        self.status, self.error_type, self.message, self.headers = status, error_type, message, list(headers)


def new_id(prefix: str, length: int = 24) -> str:
    return prefix + os.urandom(length).translate(_ID_CHARACTERS).decode()


def _dumps(value) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def _error_body(error_type: str, message: str, request_id: str) -> bytes:
    return _dumps(
        {"type": "error", "error": {"type": error_type, "message": message}, "request_id": request_id}
    ).encode()


@functools.lru_cache(maxsize=2)
def _ratelimit_headers_at(second: int) -> tuple[tuple[str, str], ...]:
    reset = datetime.fromtimestamp(second + 60, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        ("anthropic-ratelimit-requests-limit", "4000"),
        ("anthropic-ratelimit-requests-remaining", "3999"),
        ("anthropic-ratelimit-requests-reset", reset),
    )


def _ratelimit_headers() -> tuple[tuple[str, str], ...]:
    # Formatted once a second, not once a request.
    return _ratelimit_headers_at(int(time.time()))


def respond(
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes,
    *,
    options: EmulatorOptions | None = None,
    fault: str | None = None,
    body_too_large: bool = False,
) -> EmulatedResponse:
    """The API's answer to one request. `headers` may have any case; `fault` forces a failure.

    `body_too_large` says a server stopped keeping the body past `options.max_body_bytes`.
    """
    options = options or EmulatorOptions()
    headers = {name.lower(): value for name, value in headers.items()}
    request_id = new_id("req_")
    base_headers = [("request-id", request_id), *_ratelimit_headers()]
    try:
        response = _route(
            method.upper(), path.split("?", 1)[0], headers, body, options, fault or "", body_too_large
        )
    except ApiError as error:
        return error_response(error, request_id=request_id)
    response.headers = [*response.headers, *base_headers]
    return response


def error_response(error: ApiError, *, request_id: str | None = None) -> EmulatedResponse:
    """An error in the API's shape, with the headers every response carries."""
    request_id = request_id or new_id("req_")
    return EmulatedResponse(
        status=error.status,
        headers=[
            ("content-type", "application/json"),
            ("request-id", request_id),
            *_ratelimit_headers(),
            *error.headers,
        ],
        body=_error_body(error.error_type, error.message, request_id),
    )


def _route(method, path, headers, body, options, fault, body_too_large) -> EmulatedResponse:
    endpoints = {
        "/v1/complete": ("POST", _complete),
        "/v1/messages": ("POST", _messages),
        "/v1/messages/count_tokens": ("POST", _count_tokens),
        "/v1/models": ("GET", _models),
    }
    if path.startswith("/v1/models/"):
        handler_method, handler = "GET", _model
    elif path in endpoints:
        handler_method, handler = endpoints[path]
    else:
        raise ApiError(404, "not_found_error", f"Not Found: {method} {path}")
    if method != handler_method:
        raise ApiError(405, "invalid_request_error", f"Method {method} not allowed for {path}")
    _authenticate(headers, options)
    version = _version(headers)
    _fault_before_response(fault, options)
    if method == "GET":
        return handler(path)
    request = _request_json(body, options, too_large=body_too_large)
    return handler(request, version=version, options=options, fault=fault)


def _authenticate(headers, options):
    key = headers.get("x-api-key", "").strip()
    if not key:
        scheme, _, credentials = headers.get("authorization", "").partition(" ")
        key = credentials.strip() if scheme.lower() == "bearer" else ""
    if not key:
        raise ApiError(401, "authentication_error", "x-api-key header is required")
    if options.api_keys and key not in options.api_keys:
        raise ApiError(401, "authentication_error", "invalid x-api-key")


def _version(headers) -> str:
    version = headers.get("anthropic-version")
    if version is None or not version.strip():
        raise ApiError(400, "invalid_request_error", "anthropic-version: header is required")
    version = version.strip()
    if version not in VERSIONS:
        raise ApiError(400, "invalid_request_error", f'anthropic-version: "{version}" is not a valid version')
    return version


def _fault_before_response(fault, options):
    if fault == "rate_limit":
        raise ApiError(
            429,
            "rate_limit_error",
            "Number of requests has exceeded your rate limit. Please try again later.",
            headers=[("retry-after", str(options.retry_after_seconds))],
        )
    if fault == "overloaded":
        raise ApiError(529, "overloaded_error", "Overloaded")
    if fault == "server_error":
        raise ApiError(500, "api_error", "Internal server error")


def _request_json(body: bytes, options, *, too_large: bool = False) -> dict:
    if too_large or len(body) > options.max_body_bytes:
        raise ApiError(413, "request_too_large", "Request exceeds the maximum allowed number of bytes.")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_request_error", "The request body is not valid UTF-8.") from None
    try:
        request = json.loads(text)
    except ValueError as error:
        raise ApiError(400, "invalid_request_error", f"The request body is not valid JSON: {error}") from None
    except RecursionError:
        raise ApiError(400, "invalid_request_error", "The request body is nested too deeply.") from None
    if not isinstance(request, dict):
        raise ApiError(400, "invalid_request_error", "The request body must be a JSON object.")
    return request


def _field(request: dict, name: str, kind: type | tuple, *, required: bool = True, description: str = ""):
    if name not in request:
        if required:
            raise ApiError(400, "invalid_request_error", f"{name}: Field required")
        return None
    value = request[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ApiError(400, "invalid_request_error", f"{name}: Input should be {description}")
    return value


def _optional_fields(request: dict) -> list[str] | None:
    """`stop_sequences` and `metadata`, optional on both endpoints; returns the stop sequences."""
    stop_sequences = _field(request, "stop_sequences", list, required=False, description="a valid list")
    for index, sequence in enumerate(stop_sequences or []):
        if not isinstance(sequence, str):
            raise ApiError(
                400, "invalid_request_error", f"stop_sequences.{index}: Input should be a valid string"
            )
    _field(request, "metadata", dict, required=False, description="a valid dictionary")
    return stop_sequences


def _model_field(request: dict) -> str:
    model = _field(request, "model", str, description="a valid string")
    if model not in MODEL_IDS:
        raise ApiError(404, "not_found_error", f"model: {model}")
    return model


def _canonical(request: dict) -> bytes:
    """What seeds the text: the request without `stream`, so JSON and stream answers match."""
    return json.dumps({k: v for k, v in request.items() if k != "stream"}, sort_keys=True).encode()


# --- Text Completions -------------------------------------------------------------------------


def _complete(request, *, version, options, fault) -> EmulatedResponse:
    model = _model_field(request)
    prompt = _field(request, "prompt", str, description="a valid string")
    max_tokens = _field(request, "max_tokens_to_sample", int, description="a valid integer")
    stream = _field(request, "stream", bool, required=False, description="a valid boolean") or False
    stop_sequences = _optional_fields(request)
    if max_tokens < 1:
        raise ApiError(400, "invalid_request_error", "max_tokens_to_sample: Input should be greater than 0")
    if not prompt.startswith("\n\nHuman:"):
        raise ApiError(400, "invalid_request_error", 'prompt must start with "\\n\\nHuman:" turn')
    if not prompt.rstrip(" ").endswith("\n\nAssistant:"):
        raise ApiError(400, "invalid_request_error", 'prompt must end with "\\n\\nAssistant:" turn')
    rng = request_rng(_canonical(request), seed=options.seed, vary=options.vary)
    pieces, cut = generate_pieces(rng, max_tokens=max_tokens)
    stop_reason = "max_tokens" if cut else "stop_sequence"
    stop = None if cut else ((stop_sequences or ["\n\nHuman:"])[0])
    log_id = secrets.token_hex(16)
    legacy = version == LEGACY
    completion_id = new_id("compl_")
    if not stream:
        payload = {"completion": "".join(pieces), "stop": stop, "stop_reason": stop_reason}
        if legacy:
            payload |= {"truncated": False, "exception": None, "log_id": log_id, "model": model}
        else:
            payload = {"type": "completion", "id": completion_id, **payload, "model": model, "log_id": log_id}
        return _json_response(payload)
    events = []
    if legacy:
        text = ""
        for index, piece in enumerate(pieces):
            text += piece
            last = index == len(pieces) - 1
            data = {
                "completion": text,
                "stop_reason": stop_reason if last else None,
                "model": model,
                "stop": stop if last else None,
                "truncated": False,
                "exception": None,
            }
            events.append(f"data: {_dumps(data)}\r\n\r\n".encode())
            if index == 0:
                stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
                events.append(f"event: ping\r\ndata: {stamp}\r\n\r\n".encode())
        if not pieces:
            data = {
                "completion": "",
                "stop_reason": stop_reason,
                "model": model,
                "stop": stop,
                "truncated": False,
                "exception": None,
            }
            events.append(f"data: {_dumps(data)}\r\n\r\n".encode())
        error_at = len(events) // 2
        events.append(b"data: [DONE]\r\n\r\n")
    else:
        for index, piece in enumerate(pieces):
            data = {
                "type": "completion",
                "id": completion_id,
                "completion": piece,
                "stop_reason": None,
                "model": model,
                "stop": None,
            }
            events.append(f"event: completion\r\ndata: {_dumps(data)}\r\n\r\n".encode())
            if index == 0:
                events.append(b'event: ping\r\ndata: {"type": "ping"}\r\n\r\n')
        final = {
            "type": "completion",
            "id": completion_id,
            "completion": "",
            "stop_reason": stop_reason,
            "model": model,
            "stop": stop,
        }
        error_at = len(events) // 2
        events.append(f"event: completion\r\ndata: {_dumps(final)}\r\n\r\n".encode())
    return _stream_response(events, fault=fault, error_at=error_at, line_end="\r\n")


# --- Messages -----------------------------------------------------------------------------------


def _messages_request(request, *, version, needs_max_tokens: bool):
    model = _model_field(request)
    max_tokens = None
    if needs_max_tokens:
        max_tokens = _field(request, "max_tokens", int, description="a valid integer")
        if max_tokens < 1:
            raise ApiError(
                400, "invalid_request_error", "max_tokens: Input should be greater than or equal to 1"
            )
    messages = _field(request, "messages", list, description="a valid list")
    if not messages:
        raise ApiError(400, "invalid_request_error", "messages: at least one message is required")
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise ApiError(
                400, "invalid_request_error", f"messages.{index}: Input should be a valid dictionary"
            )
        if message.get("role") not in ("user", "assistant"):
            raise ApiError(
                400, "invalid_request_error", f"messages.{index}.role: Input should be 'user' or 'assistant'"
            )
        if "content" not in message:
            raise ApiError(400, "invalid_request_error", f"messages.{index}.content: Field required")
        if not isinstance(message["content"], (str, list)):
            raise ApiError(
                400, "invalid_request_error", f"messages.{index}.content: Input should be a valid list"
            )
    for name in ("temperature", "top_p"):
        _field(request, name, (int, float), required=False, description="a valid number")
    _field(request, "top_k", int, required=False, description="a valid integer")
    tools = _field(request, "tools", list, required=False, description="a valid list") or []
    for index, tool in enumerate(tools):
        _tool_definition(tool, f"tools.{index}")
    _field(request, "system", (str, list), required=False, description="a valid string")
    _optional_fields(request)
    _field(request, "tool_choice", dict, required=False, description="a valid dictionary")
    if version >= SAMPLING_REMOVED_IN:
        _rules_2026_10_21(request, messages)
    return model, max_tokens, messages


def _tool_definition(tool, where: str) -> None:
    if not isinstance(tool, dict):
        raise ApiError(400, "invalid_request_error", f"{where}: Input should be a valid dictionary")
    if "name" in tool and not isinstance(tool["name"], str):
        raise ApiError(400, "invalid_request_error", f"{where}.name: Input should be a valid string")
    schema = tool.get("input_schema", {})
    if not isinstance(schema, dict):
        raise ApiError(
            400, "invalid_request_error", f"{where}.input_schema: Input should be a valid dictionary"
        )
    if not isinstance(schema.get("properties", {}), dict | None):
        raise ApiError(
            400,
            "invalid_request_error",
            f"{where}.input_schema.properties: Input should be a valid dictionary",
        )


def _rules_2026_10_21(request, messages):
    """The request rules that 2026-10-21 added (reference, "What changed in 2026-10-21")."""
    for name in ("temperature", "top_p", "top_k"):
        if name in request:
            raise ApiError(400, "invalid_request_error", f"{name}: Extra inputs are not permitted")
    for index, message in enumerate(messages):
        blocks = message["content"] if isinstance(message["content"], list) else []
        for block_index, block in enumerate(blocks):
            if not isinstance(block, dict):
                continue
            where = f"messages.{index}.content.{block_index}"
            if message["role"] == "assistant" and block.get("type") == "document":
                raise ApiError(
                    400,
                    "invalid_request_error",
                    f"{where}: document blocks are not permitted in assistant messages",
                )
            if message["role"] == "user":
                inner = block.get("content") if block.get("type") == "search_result" else None
                candidates = [(where, block)]
                if isinstance(inner, list):
                    candidates += [
                        (f"{where}.content.{i}", b) for i, b in enumerate(inner) if isinstance(b, dict)
                    ]
                for location, candidate in candidates:
                    if candidate.get("type") == "text" and candidate.get("citations"):
                        raise ApiError(
                            400,
                            "invalid_request_error",
                            f"{location}.citations: citations are not permitted in user messages",
                        )


def _input_tokens(request) -> int:
    return rough_token_count(json.dumps(request.get("messages", [])) + json.dumps(request.get("system", "")))


def _tool_input(tool: dict, rng) -> dict:
    properties = ((tool.get("input_schema") or {}).get("properties") or {}) if isinstance(tool, dict) else {}
    values = {}
    for name, schema in list(properties.items())[:4]:
        kind = schema.get("type") if isinstance(schema, dict) else None
        values[name] = (
            rng.randint(1, 100)
            if kind in ("integer", "number")
            else rng.choice(["Paris", "London", "celsius", "today", "fox"])
        )
    return values


def _messages(request, *, version, options, fault) -> EmulatedResponse:
    model, max_tokens, _ = _messages_request(request, version=version, needs_max_tokens=True)
    stream = _field(request, "stream", bool, required=False, description="a valid boolean") or False
    tools = [tool for tool in (request.get("tools") or []) if isinstance(tool, dict) and tool.get("name")]
    tool_choice = request.get("tool_choice") if isinstance(request.get("tool_choice"), dict) else {}
    use_tool = bool(tools) and tool_choice.get("type") != "none"
    rng = request_rng(_canonical(request), seed=options.seed, vary=options.vary)
    pieces, cut = generate_pieces(rng, max_tokens=max_tokens)
    text = "".join(pieces).lstrip()
    if pieces:
        pieces[0] = pieces[0].lstrip()
    input_tokens = _input_tokens(request)
    output_tokens = rough_token_count(text)
    content = [{"type": "text", "text": text}]
    tool_block = None
    if use_tool and not cut:
        tool = tools[0]
        if tool_choice.get("type") == "tool":
            tool = next((t for t in tools if t["name"] == tool_choice.get("name")), tool)
        tool_block = {
            "type": "tool_use",
            "id": new_id("toolu_"),
            "name": tool["name"],
            "input": _tool_input(tool, rng),
        }
        content.append(tool_block)
        output_tokens += 10
    stop_reason = "max_tokens" if cut else ("tool_use" if tool_block else "end_turn")
    message_id = new_id("msg_")
    if not stream:
        return _json_response(
            {
                "id": message_id,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": content,
                "stop_reason": stop_reason,
                "stop_sequence": None,
                "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
            }
        )

    def event(name: str, data: dict) -> bytes:
        return f"event: {name}\ndata: {_dumps(data)}\n\n".encode()

    start = {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": 1},
    }
    events = [
        event("message_start", {"type": "message_start", "message": start}),
        event(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
        event("ping", {"type": "ping"}),
    ]
    for piece in pieces:
        events.append(
            event(
                "content_block_delta",
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}},
            )
        )
    events.append(event("content_block_stop", {"type": "content_block_stop", "index": 0}))
    error_at = len(events) - 2
    if tool_block:
        events.append(
            event(
                "content_block_start",
                {"type": "content_block_start", "index": 1, "content_block": {**tool_block, "input": {}}},
            )
        )
        encoded = json.dumps(tool_block["input"])
        for offset in range(0, len(encoded), 12):
            events.append(
                event(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 1,
                        "delta": {"type": "input_json_delta", "partial_json": encoded[offset : offset + 12]},
                    },
                )
            )
        events.append(event("content_block_stop", {"type": "content_block_stop", "index": 1}))
    events.append(
        event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": output_tokens},
            },
        )
    )
    events.append(event("message_stop", {"type": "message_stop"}))
    return _stream_response(events, fault=fault, error_at=error_at, line_end="\n")


def _count_tokens(request, *, version, options, fault) -> EmulatedResponse:
    _messages_request(request, version=version, needs_max_tokens=False)
    return _json_response({"input_tokens": _input_tokens(request)})


def _models(path) -> EmulatedResponse:
    data = [_model_object(model, name) for model, name in MODELS]
    return _json_response(
        {"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]}
    )


def _model(path) -> EmulatedResponse:
    model_id = path.removeprefix("/v1/models/")
    names = dict(MODELS)
    if model_id not in names:
        raise ApiError(404, "not_found_error", f"model: {model_id}")
    return _json_response(_model_object(model_id, names[model_id]))


def _model_object(model_id: str, name: str) -> dict:
    return {"type": "model", "id": model_id, "display_name": name, "created_at": "2025-01-01T00:00:00Z"}


# --- Responses ----------------------------------------------------------------------------------


def _json_response(payload: dict) -> EmulatedResponse:
    return EmulatedResponse(
        status=200, headers=[("content-type", "application/json")], body=_dumps(payload).encode()
    )


def _stream_response(events: list[bytes], *, fault: str, error_at: int, line_end: str) -> EmulatedResponse:
    drop_after = None
    if fault == "stream_error":
        error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
        events = [
            *events[:error_at],
            f"event: error{line_end}data: {_dumps(error)}{line_end}{line_end}".encode(),
        ]
    elif fault == "drop":
        drop_after = max(1, error_at)
    elif fault == "malformed_stream":
        # What a broken upstream or middlebox sends: one event's JSON cut short, the stream going on.
        event = events[error_at]
        data_at = event.index(b"data: ") + len(b"data: ")
        cut = data_at + (len(event) - data_at) // 2
        events = [*events[:error_at], event[:cut] + line_end.encode() * 2, *events[error_at + 1 :]]
    return EmulatedResponse(
        status=200,
        headers=[("content-type", "text/event-stream; charset=utf-8"), ("cache-control", "no-cache")],
        events=events,
        drop_after=drop_after,
    )
