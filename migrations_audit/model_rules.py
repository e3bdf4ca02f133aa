"""Model rules as data: what a model rejects in a request, whatever the API version, and the error
it answers (reference: anthropic-models.md, "Request parameters that newer models reject").

A rule names its models by a glob on the model id the request names (`claude-opus-4-8*`: the
model and its dated snapshots) and says what it rejects, in `match`, any of:

    {"forbid_fields": ["/thinking/budget_tokens"]}                     absent fields (JSON pointers)
    {"forbid_values": [{"field": "/thinking/type", "equals": "disabled"}]}   values a field must not hold
    {"assistant_prefill": true}                                        the last message is the assistant's

Pure, with no Django (not even settings): the product (ModelRule rows, installed from
diff/rulesets/<name>-models.json; the request check and the explanations) and the emulator (which
answers each rule's error) read the same file and match with the same functions, so they cannot
disagree.
"""

import json
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

RULESETS = Path(__file__).parent / "diff" / "rulesets"
# A model rule's key where changes, findings, signatures and verdict cards name their rule: kept
# apart from changelog rule keys (slugs, which never hold ":").
KEY_PREFIX = "model:"
# Where a request names its model and its parameters: Messages and token counting; a Message
# Batch's requests are checked one by one.
ENDPOINTS = ("POST /v1/messages", "POST /v1/messages/count_tokens")
BATCH_ENDPOINT = "POST /v1/messages/batches"


@dataclass(frozen=True)
class ModelRuleSpec:
    key: str
    model_pattern: str
    title: str
    classification: str
    match: dict
    error_status: int
    error_type: str
    error_message: str
    explanation: str = ""
    documentation_url: str = ""
    source: str = ""


@dataclass(frozen=True, slots=True)
class ModelViolation:
    rule_key: str
    model: str  # the model the request is (or would be) sent with
    field: str  # JSON pointer into the request body
    message: str


def model_ruleset_path(name: str) -> Path:
    return RULESETS / f"{name}-models.json"


def model_ruleset_load(name: str = "anthropic") -> list[ModelRuleSpec]:
    """The model rules shipped for an upstream, e.g. model_ruleset_load("anthropic")."""
    data = json.loads(model_ruleset_path(name).read_text())
    return [ModelRuleSpec(**rule) for rule in data["rules"]]


def shape_ruleset_load(name: str = "anthropic") -> list[ModelRuleSpec]:
    """The shape rules shipped beside them (`shape_rules`): not rejections, but what explains a
    change of the answer's shape across models (`{"response_shape": <kind of diff.shapes>}`)."""
    data = json.loads(model_ruleset_path(name).read_text())
    return [ModelRuleSpec(**rule) for rule in data.get("shape_rules", ())]


def rule_ref(key: str) -> str:
    """How changes, findings and cards name the model rule `key`."""
    return KEY_PREFIX + key


def model_matches(pattern: str, model: str) -> bool:
    """Whether a model id falls under a rule's pattern (`*` any characters, case as sent)."""
    return isinstance(model, str) and bool(model) and fnmatchcase(model, pattern)


def request_faults(match: dict, params: dict) -> list[str]:
    """The JSON pointers of `params` (one request's body) that `match` forbids, in its order."""
    faults = [pointer for pointer in match.get("forbid_fields", ()) if _resolve(params, pointer)[0]]
    for forbidden in match.get("forbid_values", ()):
        found, value = _resolve(params, forbidden["field"])
        if found and value == forbidden["equals"]:
            faults.append(forbidden["field"])
    if match.get("assistant_prefill"):
        messages = params.get("messages")
        if isinstance(messages, list) and messages:
            last = messages[-1]
            if isinstance(last, dict) and last.get("role") == "assistant":
                faults.append(f"/messages/{len(messages) - 1}")
    return faults


def model_violations(*, rules, method: str, path: str, body: bytes, model: str = "") -> list[ModelViolation]:
    """The model rules this request breaks, for the model each of its requests names, or `model`
    (a target model the request would be sent with instead) when given.

    `rules`: objects with key, model_pattern, match and error_message (ModelRule rows or specs)."""
    if not rules or not body:
        return []
    endpoint = f"{method.upper()} {path.split('?', 1)[0]}"
    if endpoint not in ENDPOINTS and endpoint != BATCH_ENDPOINT:
        return []
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return []
    if not isinstance(document, dict):
        return []
    if endpoint != BATCH_ENDPOINT:
        return _check(rules, document, "", model)
    out = []
    requests = document.get("requests")
    for n, item in enumerate(requests if isinstance(requests, list) else []):
        params = item.get("params") if isinstance(item, dict) else None
        if isinstance(params, dict):
            out.extend(_check(rules, params, f"/requests/{n}/params", model))
    return out


def request_model(body: bytes, field: str) -> str:
    """The model a recorded request names where `field` lies (a batch names one per request)."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return ""
    parts = field.split("/")
    if len(parts) > 3 and parts[1] == "requests" and parts[3] == "params" and isinstance(document, dict):
        found, params = _resolve(document, "/".join(parts[:4]))
        document = params if found else None
    model = document.get("model") if isinstance(document, dict) else None
    return model if isinstance(model, str) else ""


def _check(rules, params: dict, prefix: str, model: str) -> list[ModelViolation]:
    sent = model or params.get("model")
    if not isinstance(sent, str) or not sent:
        return []
    return [
        ModelViolation(rule.key, sent, prefix + pointer, rule.error_message)
        for rule in rules
        if model_matches(rule.model_pattern, sent)
        for pointer in request_faults(rule.match or {}, params)
    ]


def _resolve(document, pointer: str) -> tuple[bool, object]:
    """(found, value) of a JSON pointer (RFC 6901) in a document."""
    value = document
    for raw in pointer.split("/")[1:]:
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(value, dict) and token in value:
            value = value[token]
        elif isinstance(value, list) and token.isdigit() and int(token) < len(value):
            value = value[int(token)]
        else:
            return False, None
    return True, value
