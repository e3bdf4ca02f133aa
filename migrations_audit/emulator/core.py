"""What the Anthropic API answers, version by version, as a pure function of the request.

Facts from shared/reference/anthropic-versions.md. Where the reference is silent, the choice is
documented in README.md beside this file.
"""

import functools
import json
import math
import os
import re
import secrets
import string
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from urllib.parse import parse_qsl

from migrations_audit.model_rules import request_faults

from . import content
from .models import catalogue
from .state import State, paginate
from .text import generate_pieces, request_rng, rough_token_count

VERSIONS = ("2023-01-01", "2023-06-01", "2026-10-21")
LEGACY = "2023-01-01"
SAMPLING_REMOVED_IN = "2026-10-21"
# Prompt caching: below this many prompt tokens nothing is cached (the smallest minimum of the docs).
MIN_CACHEABLE_TOKENS = 1024
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
    # Answer as the API did on this day: models released later or retired by then are unknown (404).
    as_of: date | None = None
    # Pad the JSON of stream `data:` lines with spaces before its closing brace, as real streams do.
    pad_stream_json: bool = False
    # How long a message batch stays `in_progress` after its creation.
    batch_seconds: float = 0.0


STATE = State()


@dataclass
class Call:
    """One request as the handlers see it, once routed, authenticated and versioned."""

    method: str
    path_params: tuple[str, ...]
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    body_too_large: bool
    version: str
    options: EmulatorOptions
    fault: str
    as_of: date | None
    state: State

    def json(self) -> dict:
        return _request_json(self.body, self.options, too_large=self.body_too_large)


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
    state: State | None = None,
) -> EmulatedResponse:
    """The API's answer to one request. `headers` may have any case; `fault` forces a failure.

    `body_too_large` says a server stopped keeping the body past `options.max_body_bytes`; `state`
    holds files, batches and prompt-cache entries (by default the process's own).
    """
    options = options or EmulatorOptions()
    headers = {name.lower(): value for name, value in headers.items()}
    request_id = new_id("req_")
    base_headers = [("request-id", request_id), *_ratelimit_headers()]
    path, _, query = path.partition("?")
    try:
        response = _route(
            method.upper(),
            path,
            _query_params(query),
            headers,
            body,
            options,
            fault or "",
            body_too_large,
            state or STATE,
        )
    except ApiError as error:
        return error_response(error, request_id=request_id)
    response.headers = [*response.headers, *base_headers]
    return response


def _query_params(query: str) -> dict[str, str]:
    """The query parameters; a list (`a[]=x&a[]=y` as the SDKs send it, or `a=x&a=y`) joined by commas."""
    params: dict[str, str] = {}
    for key, value in parse_qsl(query):
        key = key.removesuffix("[]")
        params[key] = f"{params[key]},{value}" if key in params else value
    return params


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


def _endpoints() -> list[tuple[re.Pattern, dict]]:
    from . import stored  # the stateful endpoints build on the Messages handler below

    table = [
        (r"/v1/complete", {"POST": _complete}),
        (r"/v1/messages", {"POST": _messages}),
        (r"/v1/messages/count_tokens", {"POST": _count_tokens}),
        (r"/v1/messages/batches", {"POST": stored.batch_create, "GET": stored.batch_list}),
        (r"/v1/messages/batches/([^/]+)", {"GET": stored.batch_retrieve, "DELETE": stored.batch_delete}),
        (r"/v1/messages/batches/([^/]+)/results", {"GET": stored.batch_results}),
        (r"/v1/messages/batches/([^/]+)/cancel", {"POST": stored.batch_cancel}),
        (r"/v1/models", {"GET": _models}),
        (r"/v1/models/(.+)", {"GET": _model}),
        (r"/v1/files", {"POST": stored.file_upload, "GET": stored.file_list}),
        (r"/v1/files/([^/]+)", {"GET": stored.file_metadata, "DELETE": stored.file_delete}),
        (r"/v1/files/([^/]+)/content", {"GET": stored.file_content}),
    ]
    return [(re.compile(pattern), handlers) for pattern, handlers in table]


@functools.cache
def _endpoint_table():
    return _endpoints()


def _route(method, path, query, headers, body, options, fault, body_too_large, state) -> EmulatedResponse:
    found = next(
        ((match, handlers) for pattern, handlers in _endpoint_table() if (match := pattern.fullmatch(path))),
        None,
    )
    if found is None:
        raise ApiError(404, "not_found_error", f"Not Found: {method} {path}")
    match, handlers = found
    if method not in handlers:
        raise ApiError(405, "invalid_request_error", f"Method {method} not allowed for {path}")
    _authenticate(headers, options)
    version = _version(headers)
    as_of = _as_of(headers, options)
    _fault_before_response(fault, options)
    call = Call(
        method=method,
        path_params=match.groups(),
        query=query,
        headers=headers,
        body=body,
        body_too_large=body_too_large,
        version=version,
        options=options,
        fault=fault,
        as_of=as_of,
        state=state,
    )
    return handlers[method](call)


def _as_of(headers, options) -> date | None:
    """The day the emulator answers as: the `x-emulator-as-of` header, else the server's `--as-of`."""
    value = headers.get("x-emulator-as-of", "").strip()
    if not value:
        return options.as_of
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ApiError(
            400, "invalid_request_error", "x-emulator-as-of: Input should be a valid date (YYYY-MM-DD)"
        ) from None


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


def _model_field(request: dict, as_of: date | None) -> str:
    """The requested model id, if it answers (on `as_of`): else 404, as for an unknown or retired model."""
    model = _field(request, "model", str, description="a valid string")
    if catalogue().resolve(model, as_of) is None:
        raise ApiError(404, "not_found_error", f"model: {model}")
    return model


def _canonical(request: dict) -> bytes:
    """What seeds the text: the request without `stream`, so JSON and stream answers match."""
    return json.dumps({k: v for k, v in request.items() if k != "stream"}, sort_keys=True).encode()


# --- Text Completions -------------------------------------------------------------------------


def _complete(call: Call) -> EmulatedResponse:
    request, version, options, fault = call.json(), call.version, call.options, call.fault
    model = _model_field(request, call.as_of)
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
    return _stream_response(events, fault=fault, error_at=error_at, line_end="\r\n", options=options)


# --- Messages -----------------------------------------------------------------------------------


def _messages_request(request, *, version, needs_max_tokens: bool, as_of: date | None = None):
    model = _model_field(request, as_of)
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
    _thinking_config(request, max_tokens)
    _output_options(request)
    if version >= SAMPLING_REMOVED_IN:
        _rules_2026_10_21(request, messages)
    _model_rules(request, model)
    return model, max_tokens, messages


def _thinking_config(request, max_tokens: int | None) -> None:
    thinking = _field(request, "thinking", dict, required=False, description="a valid dictionary")
    if thinking is None:
        return
    if thinking.get("type") not in ("enabled", "adaptive", "disabled"):
        raise ApiError(
            400, "invalid_request_error", "thinking.type: Input should be 'enabled', 'adaptive' or 'disabled'"
        )
    if thinking["type"] != "enabled":
        return
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int) or isinstance(budget, bool):
        raise ApiError(400, "invalid_request_error", "thinking.enabled.budget_tokens: Field required")
    if budget < 1024:
        raise ApiError(
            400,
            "invalid_request_error",
            "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024",
        )
    if max_tokens is not None and max_tokens <= budget:
        raise ApiError(
            400, "invalid_request_error", "`max_tokens` must be greater than `thinking.budget_tokens`."
        )


def _output_options(request) -> None:
    """`output_config` (effort, format), the beta `output_format` and `service_tier`: their types."""
    config = _field(request, "output_config", dict, required=False, description="a valid dictionary") or {}
    if config.get("effort") not in (None, "low", "medium", "high", "xhigh", "max"):
        raise ApiError(
            400,
            "invalid_request_error",
            "output_config.effort: Input should be 'low', 'medium', 'high', 'xhigh' or 'max'",
        )
    for where, fmt in (
        ("output_config.format", config.get("format")),
        ("output_format", request.get("output_format")),
    ):
        if fmt is None:
            continue
        if (
            not isinstance(fmt, dict)
            or fmt.get("type") != "json_schema"
            or not isinstance(fmt.get("schema"), dict)
        ):
            raise ApiError(
                400,
                "invalid_request_error",
                f"{where}: Input should be an object with type 'json_schema' and a `schema` object",
            )
    if request.get("service_tier", "auto") not in ("auto", "standard_only"):
        raise ApiError(
            400, "invalid_request_error", "service_tier: Input should be 'auto' or 'standard_only'"
        )


def _model_rules(request, model_id: str) -> None:
    """What this model rejects on top of the version's rules: the product's model rules
    (diff/rulesets/anthropic-models.json), each answered with the error it states."""
    known = catalogue()
    for rule in known.rules_for(known.find(model_id)):
        if request_faults(rule.match, request):
            raise ApiError(rule.error_status, rule.error_type, rule.error_message)


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
    """The tool call's input: valid for its `input_schema` (every required property, up to four in all).

    Plain strings and numbers are drawn from the request's generator, so the same request calls the
    tool with the same input; other kinds (enums, booleans, arrays, objects, formats) come from the
    schema.
    """
    input_schema = tool.get("input_schema") or {}
    properties = input_schema.get("properties") or {}
    required = [name for name in input_schema.get("required") or [] if name in properties]
    names = required + [name for name in properties if name not in required][: max(0, 4 - len(required))]
    values = {}
    for name in sorted(names, key=list(properties).index):
        schema = properties[name] if isinstance(properties[name], dict) else {}
        kind = schema.get("type")
        plain = not ({"enum", "const", "format", "$ref", "anyOf", "oneOf", "allOf"} & set(schema))
        if plain and kind in ("integer", "number"):
            low = max(1, math.ceil(schema.get("minimum", 1)))
            high = min(100, math.floor(schema.get("maximum", 100)))
            values[name] = rng.randint(low, high) if low <= high else content.schema_instance(schema)
        elif plain and kind in ("string", None) and not {"minLength", "maxLength", "pattern"} & set(schema):
            values[name] = rng.choice(["Paris", "London", "celsius", "today", "fox"])
        else:
            values[name] = content.schema_instance(schema, root=input_schema)
    return values


def _cache_usage(request, state: State) -> tuple[int, int, dict]:
    """Prompt caching: (tokens written, tokens read, `cache_creation` by TTL) for the cached prefix.

    The prefix runs, in the order tools, system, messages, to the last block with `cache_control`;
    the first request with a prefix writes it, the next ones within its TTL read it. A prefix shorter
    than the minimum cacheable length is not cached (and says so by zeros), as the real API does.
    """
    parts = [*(request.get("tools") or [])]
    system = request.get("system")
    parts += system if isinstance(system, list) else ([system] if system else [])
    for message in request.get("messages") or []:
        content_blocks = message.get("content") if isinstance(message, dict) else None
        parts += content_blocks if isinstance(content_blocks, list) else [content_blocks]
    marked = [i for i, part in enumerate(parts) if isinstance(part, dict) and part.get("cache_control")]
    empty = {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0}
    if not marked:
        return 0, 0, empty
    prefix = json.dumps([request.get("model"), parts[: marked[-1] + 1]], sort_keys=True)
    tokens = rough_token_count(prefix)
    if tokens < MIN_CACHEABLE_TOKENS:
        return 0, 0, empty
    control = parts[marked[-1]]["cache_control"]
    ttl = control.get("ttl", "5m") if isinstance(control, dict) else "5m"
    if state.cache_hit(prefix.encode(), ttl):
        return 0, tokens, empty
    return tokens, 0, {**empty, f"ephemeral_{'1h' if ttl == '1h' else '5m'}_input_tokens": tokens}


def _usage(request, call: Call, *, output_tokens: int, server_kinds: list[str], tier: str) -> dict:
    written, read, by_ttl = _cache_usage(request, call.state)
    usage = {
        "input_tokens": max(1, _input_tokens(request) - written - read),
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": read,
        "cache_creation": by_ttl,
        "output_tokens": output_tokens,
        "service_tier": tier,
    }
    if server_kinds:
        usage["server_tool_use"] = {
            "web_search_requests": int("web_search" in server_kinds),
            "web_fetch_requests": int("web_fetch" in server_kinds),
        }
    return usage


def _message_answer(request, model: str, max_tokens: int, messages: list, call: Call, *, tier="standard"):
    """The answer as a Message object, and the pieces its main text streams in (and that block's index)."""
    options = call.options
    canonical = _canonical(request)
    rng = request_rng(canonical, seed=options.seed, vary=options.vary)
    pieces, cut = generate_pieces(rng, max_tokens=max_tokens)
    schema = content.output_schema(request)
    if schema is not None:
        # Structured outputs: the text is JSON valid for the requested schema.
        text = json.dumps(content.schema_instance(schema))
        pieces, cut = content.json_pieces(text), False
    else:
        text = "".join(pieces).lstrip()
        if pieces:
            pieces[0] = pieces[0].lstrip()
    blocks = content.thinking_blocks(
        request,
        always=catalogue().find(model).thinking == "always",
        rng=lambda: request_rng(canonical + b"thinking", seed=options.seed, vary=options.vary),
        max_tokens=max_tokens,
    )
    tool_choice = request.get("tool_choice") if isinstance(request.get("tool_choice"), dict) else {}
    declared = request.get("tools") or []
    server_kinds = content.server_tool_kinds(declared) if tool_choice.get("type") != "none" else []
    server_blocks, citations = content.server_tool_blocks(
        server_kinds, content.first_user_text(messages) or "foxes"
    )
    blocks += server_blocks
    citations = [] if schema is not None else (citations or content.document_citations(messages))
    text_block = {"type": "text", "text": text, **({"citations": citations} if citations else {})}
    text_index = len(blocks)
    blocks.append(text_block)
    output_tokens = rough_token_count(text) + sum(
        content.block_tokens(block) for block in blocks if block["type"] != "text"
    )
    tools = [
        tool
        for tool in declared
        if isinstance(tool, dict) and tool.get("name") and tool.get("type", "custom") == "custom"
    ]
    tool_block = None
    if tools and tool_choice.get("type") != "none" and not cut:
        tool = tools[0]
        if tool_choice.get("type") == "tool":
            tool = next((t for t in tools if t["name"] == tool_choice.get("name")), tool)
        tool_block = {
            "type": "tool_use",
            "id": new_id("toolu_"),
            "name": tool["name"],
            "input": _tool_input(tool, rng),
        }
        blocks.append(tool_block)
        output_tokens += 10
        if tool_choice.get("type") in ("any", "tool"):
            # A forced tool call starts the answer: the real API sends no text before it.
            blocks.pop(text_index)
            output_tokens -= rough_token_count(text)
            text_index = -1
    message = {
        "id": new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": _snapshot_id(model),
        "content": blocks,
        "stop_reason": "max_tokens" if cut else ("tool_use" if tool_block else "end_turn"),
        "stop_sequence": None,
        "usage": _usage(request, call, output_tokens=output_tokens, server_kinds=server_kinds, tier=tier),
    }
    return message, pieces, text_index


def _snapshot_id(model: str) -> str:
    """The id a Messages answer names: the snapshot an alias stands for (`claude-sonnet-4-0` is
    answered as `claude-sonnet-4-20250514`), as in the real recordings of the fidelity corpus."""
    known = catalogue().find(model)
    return known.id if known is not None else model


def _messages(call: Call) -> EmulatedResponse:
    request = call.json()
    model, max_tokens, messages = _messages_request(
        request, version=call.version, needs_max_tokens=True, as_of=call.as_of
    )
    stream = _field(request, "stream", bool, required=False, description="a valid boolean") or False
    message, pieces, text_index = _message_answer(request, model, max_tokens, messages, call)
    if not stream:
        return _json_response(message)

    def event(name: str, data: dict) -> bytes:
        return f"event: {name}\ndata: {_dumps(data)}\n\n".encode()

    usage = message["usage"]
    start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
    events = [event("message_start", {"type": "message_start", "message": start})]
    error_at = 0
    for index, block in enumerate(message["content"]):
        for name, data in content.block_events(index, block, pieces if index == text_index else None):
            events.append(event(name, data))
            if len(events) == 2:
                events.append(event("ping", {"type": "ping"}))
        if index == text_index:
            error_at = len(events) - 2  # the text's last delta: where a stream fault strikes
    final_usage = {
        key: usage[key]
        for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens")
    }
    if "server_tool_use" in usage:
        final_usage["server_tool_use"] = usage["server_tool_use"]
    delta = {"stop_reason": message["stop_reason"], "stop_sequence": None}
    events.append(event("message_delta", {"type": "message_delta", "delta": delta, "usage": final_usage}))
    events.append(event("message_stop", {"type": "message_stop"}))
    return _stream_response(events, fault=call.fault, error_at=error_at, line_end="\n", options=call.options)


def _count_tokens(call: Call) -> EmulatedResponse:
    request = call.json()
    _messages_request(request, version=call.version, needs_max_tokens=False, as_of=call.as_of)
    return _json_response({"input_tokens": _input_tokens(request)})


# --- Models -------------------------------------------------------------------------------------


def _models(call: Call) -> EmulatedResponse:
    day = call.as_of or datetime.now(UTC).date()
    models = catalogue().listed(call.as_of)
    wanted = call.query.get("lifecycle")
    if wanted:
        models = [m for m in models if m.lifecycle(day) in wanted.split(",")]
    try:
        page, has_more = paginate(models, id_of=lambda m: m.id, params=call.query)
    except ValueError as error:
        raise ApiError(400, "invalid_request_error", str(error)) from None
    data = [_model_object(model, day) for model in page]
    return _json_response(
        {
            "data": data,
            "has_more": has_more,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }
    )


def _model(call: Call) -> EmulatedResponse:
    model_id = call.path_params[0]
    model = catalogue().find(model_id)
    if model is None or (call.as_of is not None and model.released and model.released > call.as_of):
        raise ApiError(404, "not_found_error", f"model: {model_id}")
    return _json_response(_model_object(model, call.as_of or datetime.now(UTC).date()))


def _model_object(model, day: date) -> dict:
    """A ModelInfo: an alias resolves to its model; `lifecycle` and dates as of `day`."""

    def stamp(value: date | None) -> str | None:
        return f"{value.isoformat()}T00:00:00Z" if value else None

    lifecycle = model.lifecycle(day)
    return {
        "type": "model",
        "id": model.id,
        "display_name": model.display_name,
        "created_at": stamp(model.released) or "1970-01-01T00:00:00Z",
        "lifecycle": lifecycle,
        "deprecated_at": stamp(model.deprecated) if lifecycle != "active" else None,
        "retires_at": stamp(model.retired) if lifecycle != "active" else None,
    }


# --- Responses ----------------------------------------------------------------------------------


def _json_response(payload: dict) -> EmulatedResponse:
    return EmulatedResponse(
        status=200, headers=[("content-type", "application/json")], body=_dumps(payload).encode()
    )


def _stream_response(
    events: list[bytes], *, fault: str, error_at: int, line_end: str, options: EmulatorOptions
) -> EmulatedResponse:
    if options.pad_stream_json:
        events = [content.padded(event, line_end.encode()) for event in events]
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
