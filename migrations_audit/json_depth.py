"""How deep a JSON value nests, measured without recursion.

Code that walks a decoded body recursively (masking, the exchange page) first asks whether it nests
past `MIGRATION_AUDIT_MAX_JSON_DEPTH`; past it, the body is kept or shown as text. Real API bodies
nest a few levels; a hostile one nests thousands, past Python's stack.
"""

from django.conf import settings


def max_json_depth() -> int:
    return settings.MIGRATION_AUDIT_MAX_JSON_DEPTH


def json_text_may_nest_deeper(text: bytes | str, limit: int) -> bool:
    """False when the JSON text has too few brackets to nest past `limit`: then it need not be walked."""
    if isinstance(text, str):
        return text.count("[") + text.count("{") > limit
    return text.count(b"[") + text.count(b"{") > limit


def json_nests_deeper(value, limit: int) -> bool:
    """Whether a decoded JSON value has containers nested more than `limit` deep (the value itself is
    level 1 when it is an object or an array)."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False
