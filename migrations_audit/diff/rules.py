"""Changelog rules as data: which differences a version change explains, and how they are classed.

A rule's `match` holds any of:
- `changes`: patterns {"kind": ..., "path": ...} (in paths `*` is one segment, `**` any depth);
  `endpoints` limits them to some "METHOD /path";
- `rename`: {"from": pointer, "to": pointer}: a field_removed + field_added pair becomes one
  field_renamed explained by the rule;
- `request`: a request rule (see request_check). It rejects requests under `version_to` before
  any replay, and explains an outcome_changed (accepted -> rejected) located at the field it names.

Rules ship per upstream as JSON files in rulesets/ and are loaded into ChangelogRule rows
(services.changelog_rules_install), where the admin can edit them.

Model rules (migrations_audit.model_rules, ModelRule rows) hold under any version: an
outcome_changed whose error is the one a model rule answers, or names the field it forbids in the
request for the request's model, is explained by that model rule (its key prefixed, `model:<key>`).
"""

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from migrations_audit.model_rules import model_matches, model_violations, rule_ref

from .changes import NOISE, Change
from .request_check import is_dated_version, request_violations
from .shapes import SHAPE_KINDS

RULESETS = Path(__file__).parent / "rulesets"


@dataclass(frozen=True)
class RuleSpec:
    key: str
    version_from: str
    version_to: str
    title: str
    classification: str
    match: dict = field(default_factory=dict)
    explanation: str = ""
    documentation_url: str = ""


def ruleset_load(name: str) -> list[RuleSpec]:
    """The rules shipped for an upstream, e.g. ruleset_load("anthropic")."""
    data = json.loads((RULESETS / f"{name}.json").read_text())
    return [RuleSpec(**rule) for rule in data["rules"]]


def rule_in_range(rule, version_from: str, version_to: str) -> bool:
    """Whether a rule's version change happens between two compared versions (either way round,
    so that a baseline->target pair spanning several versions gets every rule in between)."""
    low, high = sorted((version_from, version_to))
    if (rule.version_from, rule.version_to) in ((version_from, version_to), (version_to, version_from)):
        return True
    dated = all(is_dated_version(v) for v in (rule.version_from, rule.version_to, low, high))
    return dated and low <= rule.version_from and rule.version_to <= high


@lru_cache(maxsize=512)
def _pattern(glob: str) -> re.Pattern:
    parts = re.split(r"(\*\*|\*)", glob)
    regex = "".join(".*" if p == "**" else "[^/]*" if p == "*" else re.escape(p) for p in parts)
    return re.compile(regex + r"\Z")


def changes_explain(
    changes: list[Change],
    *,
    rules,
    version_from: str,
    version_to: str,
    endpoint: str = "",
    request_body: bytes = b"",
    model_rules=(),
    model: str = "",
) -> list[Change]:
    """Attach to each change the rule that explains it, and the rule's classification (noise
    stays noise). Renames are merged into one change. Returns the (possibly shorter) list.

    `model_rules` explain an outcome_changed for the model the request names (or `model`, the
    model the rejected side was sent with, when it differs)."""
    rules = [rule for rule in rules if rule_in_range(rule, version_from, version_to)]
    if not rules and not model_rules:
        return changes
    changes = _pair_renames(changes, rules)
    for change in changes:
        if change.rule_key is not None:
            continue
        if change.kind == "outcome_changed":
            _explain_outcome(change, rules, version_from, version_to, endpoint, request_body)
            if change.rule_key is None and model_rules:
                _explain_outcome_by_model(change, model_rules, endpoint, request_body, model)
            continue
        if change.kind in SHAPE_KINDS:
            _explain_shape(change, model_rules, model)
            continue
        for rule in rules:
            match = rule.match or {}
            endpoints = match.get("endpoints")
            if endpoints and endpoint not in endpoints:
                continue
            for pattern in match.get("changes", ()):
                kind = pattern.get("kind", change.kind)
                if kind == change.kind and _pattern(pattern.get("path", "**")).match(change.path):
                    _attach(change, rule)
                    break
            if change.rule_key is not None:
                break
    return changes


def _attach(change: Change, rule, key: str | None = None) -> None:
    change.rule_key = key or rule.key
    if change.classification != NOISE:
        change.classification = rule.classification


def _pair_renames(changes: list[Change], rules) -> list[Change]:
    renames = [(rule, (rule.match or {}).get("rename")) for rule in rules if (rule.match or {}).get("rename")]
    if not renames:
        return changes
    by_key = {(change.kind, change.path): change for change in changes}
    merged = set()
    out = []
    for rule, rename in renames:
        removed = by_key.get(("field_removed", rename["from"]))
        added = by_key.get(("field_added", rename["to"]))
        if removed is None or added is None:
            continue
        merged.update((id(removed), id(added)))
        renamed = Change(
            "field_renamed",
            rename["from"],
            {"path": rename["from"], "value": removed.before},
            {"path": rename["to"], "value": added.after},
        )
        _attach(renamed, rule)
        out.append(renamed)
    return [change for change in changes if id(change) not in merged] + out


def _explain_outcome(change, rules, version_from, version_to, endpoint, request_body) -> None:
    """An accepted request rejected under the other version: the request rule it breaks explains
    it, when the field the error names is the one the rule finds at fault (or the error names none)."""
    after = change.after or {}
    rejected_version = version_to if (after.get("status") or 0) >= 400 else version_from
    if not request_body or not endpoint:
        return
    method, _, path = endpoint.partition(" ")
    request_rules = [rule for rule in rules if (rule.match or {}).get("request")]
    violations = request_violations(
        upstream_rules=request_rules, version=rejected_version, method=method, path=path, body=request_body
    )
    for violation in violations:
        if change.path == "outcome" or fields_related(change.path, violation.field):
            if change.path == "outcome":
                change.path = violation.field
            rule = next(rule for rule in request_rules if rule.key == violation.rule_key)
            _attach(change, rule)
            return


def _explain_outcome_by_model(change, model_rules, endpoint, request_body, model) -> None:
    """A request rejected on one side: the model rule it breaks explains it when the error is the
    rule's own (its message) or names the field the rule finds at fault."""
    if not request_body or not endpoint:
        return
    before, after = change.before or {}, change.after or {}
    rejected = after if (after.get("status") or 0) >= 400 else before
    method, _, path = endpoint.partition(" ")
    violations = model_violations(rules=model_rules, method=method, path=path, body=request_body, model=model)
    by_key = {rule.key: rule for rule in model_rules}
    for violation in violations:
        rule = by_key[violation.rule_key]
        same_error = rejected.get("message") == rule.error_message and (
            rejected.get("status") in (None, rule.error_status)
        )
        if same_error or (change.path != "outcome" and fields_related(change.path, violation.field)):
            if change.path == "outcome":
                change.path = violation.field
            _attach(change, rule, key=rule_ref(rule.key))
            return


def _explain_shape(change: Change, model_rules, model: str) -> None:
    """A shape change across models: the shape rule of the model ruleset (`{"response_shape": kind}`)
    that holds for the model answering explains it, with its classification."""
    for rule in model_rules:
        shape = (rule.match or {}).get("response_shape")
        if shape == change.kind and (not model or model_matches(rule.model_pattern, model)):
            _attach(change, rule, key=rule_ref(rule.key))
            return


def fields_related(a: str, b: str) -> bool:
    """Same field, or one inside the other (an error may name the block or a field of it)."""
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")
