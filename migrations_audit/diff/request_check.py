"""Request rules: which recorded requests a version will reject, decided from the request alone.

Pure: rules come in as objects with `key`, `version_to` and `match` (ChangelogRule rows or
rules.RuleSpec), so capture can check a batch of exchanges without a query per exchange. The
checks are data (`match["request"]`), three kinds of them:

    {"forbid_fields": ["temperature", "top_p", "top_k"]}
    {"forbid_block": {"role": "assistant", "type": "document"}}
    {"forbid_block": {"role": "user", "type": "text", "nonempty": "citations", "inside": ["search_result"]}}

each limited to `endpoints` ("METHOD /path"). A Message Batch's requests are checked one by one,
located under /requests/<n>/params, since a batch created under a version applies its rules to each.
"""

import json
from dataclasses import dataclass

from .json_diff import escape

BATCH_ENDPOINT = "POST /v1/messages/batches"


@dataclass(frozen=True, slots=True)
class Violation:
    rule_key: str
    field: str  # JSON pointer into the request body
    message: str


def rule_applies_to_version(rule_version: str, version: str) -> bool:
    """A rule introduced by version V holds for V and for every later version.

    Date-named versions (all three upstreams we know) order as strings; any other name must match."""
    if rule_version == version:
        return True
    return is_dated_version(rule_version) and is_dated_version(version) and rule_version <= version


def is_dated_version(name: str) -> bool:
    return len(name) == 10 and name[4] == "-" and name[7] == "-" and name.replace("-", "").isdigit()


def request_violations(
    *, upstream_rules, version: str, method: str, path: str, body: bytes
) -> list[Violation]:
    """The request rules of `version` (and earlier versions) that this request breaks."""
    rules = [
        rule
        for rule in upstream_rules
        if (rule.match or {}).get("request") and rule_applies_to_version(rule.version_to, version)
    ]
    if not rules or not body:
        return []
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return []
    if not isinstance(document, dict):
        return []
    endpoint = f"{method.upper()} {path.split('?', 1)[0]}"
    out: list[Violation] = []
    for rule in rules:
        check = rule.match["request"]
        endpoints = check.get("endpoints")
        if endpoints and endpoint not in endpoints and endpoint != BATCH_ENDPOINT:
            continue
        if endpoint == BATCH_ENDPOINT:
            if endpoints and BATCH_ENDPOINT not in endpoints:
                continue
            requests = document.get("requests")
            for n, item in enumerate(requests if isinstance(requests, list) else []):
                params = item.get("params") if isinstance(item, dict) else None
                if isinstance(params, dict):
                    out.extend(_check(rule.key, check, params, f"/requests/{n}/params"))
        else:
            out.extend(_check(rule.key, check, document, ""))
    return out


def _check(rule_key: str, check: dict, params: dict, prefix: str) -> list[Violation]:
    out = []
    for name in check.get("forbid_fields", ()):
        if name in params:
            message = check.get("message", "{field}: Extra inputs are not permitted").format(field=name)
            out.append(Violation(rule_key, f"{prefix}/{escape(name)}", message))
    block = check.get("forbid_block")
    if block:
        for pointer in _forbidden_blocks(params, block, prefix):
            dotted = pointer[len(prefix) + 1 :].replace("/", ".")
            message = check.get("message", "{field}: {type} block not permitted here").format(
                field=dotted, type=block["type"]
            )
            out.append(Violation(rule_key, pointer, message))
    return out


def _forbidden_blocks(params: dict, block: dict, prefix: str):
    messages = params.get("messages")
    if not isinstance(messages, list):
        return
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") != block.get("role"):
            continue
        content = message.get("content")
        if not isinstance(content, list):
            continue  # a plain string holds no blocks
        for j, item in enumerate(content):
            if not isinstance(item, dict):
                continue
            here = f"{prefix}/messages/{i}/content/{j}"
            if _block_matches(item, block):
                yield here
            elif item.get("type") in block.get("inside", ()) and isinstance(item.get("content"), list):
                for k, inner in enumerate(item["content"]):
                    if isinstance(inner, dict) and _block_matches(inner, block):
                        yield f"{here}/content/{k}"


def _block_matches(item: dict, block: dict) -> bool:
    if item.get("type") != block["type"]:
        return False
    nonempty = block.get("nonempty")
    return not nonempty or bool(item.get(nonempty))
