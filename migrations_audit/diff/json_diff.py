"""Structural diff of two JSON documents, located by JSON pointers.

The hot path of the product: every replayed pair goes through it. It walks plain dicts and lists
and allocates nothing for parts that are equal: a subtree is skipped as soon as `==` (in C) says
it is unchanged, so the cost follows the size of the differences, not of the documents.

Arrays of objects are matched by their `type` (or `id` when they have no type) when their lengths
differ, so that one inserted content block reads as one added element, not as every following
block changed; otherwise element i is compared with element i.

Known limit: Python's `==` holds `1 == 1.0 == True`, so `true` replaced by `1` deep inside an
otherwise equal container is not reported. JSON APIs practically never do that.
"""

from difflib import SequenceMatcher

from .changes import Change

_JSON_TYPE = {
    dict: "object",
    list: "array",
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
}


def json_type(value) -> str:
    if value is None:
        return "null"
    return _JSON_TYPE.get(type(value), type(value).__name__)


def json_diff(a, b, *, prefix: str = "") -> list[Change]:
    """The changes that turn `a` into `b`.

    Removed elements and changed values are located in `a`, added elements in `b` (see
    `json_changes_apply`, which relies on it). An array whose length changes also gets one
    `array_length_changed` at the array itself.
    """
    out: list[Change] = []
    if a == b and type(a) is type(b):
        return out
    _walk(a, b, prefix, prefix, out)
    return out


def escape(key: str) -> str:
    if "~" in key or "/" in key:
        return key.replace("~", "~0").replace("/", "~1")
    return key


def _walk(a, b, pa: str, pb: str, out: list) -> None:
    ta = type(a)
    tb = type(b)
    if ta is dict and tb is dict:
        _walk_dict(a, b, pa, pb, out)
    elif ta is list and tb is list:
        _walk_list(a, b, pa, pb, out)
    elif a is None or b is None or _JSON_TYPE.get(ta) == _JSON_TYPE.get(tb):
        # null <-> value is how nullable fields change (stop_reason null -> "end_turn"): a value.
        out.append(Change("value_changed", pa, a, b))
    else:
        out.append(Change("type_changed", pa, a, b))


def _walk_dict(a: dict, b: dict, pa: str, pb: str, out: list) -> None:
    removed = False
    for key, va in a.items():
        if key in b:
            vb = b[key]
            if va == vb and type(va) is type(vb):
                continue
            seg = escape(key)
            _walk(va, vb, pa + "/" + seg, pb + "/" + seg, out)
        else:
            removed = True
            out.append(Change("field_removed", pa + "/" + escape(key), va, None))
    if removed or len(a) != len(b):
        for key, vb in b.items():
            if key not in a:
                out.append(Change("field_added", pb + "/" + escape(key), None, vb))


def _walk_list(a: list, b: list, pa: str, pb: str, out: list) -> None:
    la = len(a)
    lb = len(b)
    if la == lb:
        _pairs(a, b, range(la), range(lb), pa, pb, out)
        return
    out.append(Change("array_length_changed", pa, la, lb))
    keys_a = _match_keys(a)
    keys_b = _match_keys(b) if keys_a is not None else None
    if keys_b is None:
        shortest = min(la, lb)
        _pairs(a, b, range(shortest), range(shortest), pa, pb, out)
        for i in range(shortest, la):
            out.append(Change("field_removed", f"{pa}/{i}", a[i], None))
        for j in range(shortest, lb):
            out.append(Change("field_added", f"{pb}/{j}", None, b[j]))
        return
    removed = []
    added = []
    for tag, i1, i2, j1, j2 in _opcodes(keys_a, keys_b):
        if tag == "equal" or (tag == "replace" and i2 - i1 == j2 - j1):
            _pairs(a, b, range(i1, i2), range(j1, j2), pa, pb, out)
        else:
            removed.extend(range(i1, i2))
            added.extend(range(j1, j2))
    for i in removed:
        out.append(Change("field_removed", f"{pa}/{i}", a[i], None))
    for j in added:
        out.append(Change("field_added", f"{pb}/{j}", None, b[j]))


def _opcodes(keys_a: list, keys_b: list) -> list[tuple]:
    """The alignment of two keyed arrays, computed in one canonical direction and mirrored when needed:
    SequenceMatcher breaks ties by position, so diff(a, b) and diff(b, a) must share one alignment to
    report mirrored changes."""
    if keys_a <= keys_b:
        return SequenceMatcher(None, keys_a, keys_b, autojunk=False).get_opcodes()
    mirror = {"insert": "delete", "delete": "insert"}
    return [
        (mirror.get(tag, tag), i1, i2, j1, j2)
        for tag, j1, j2, i1, i2 in SequenceMatcher(None, keys_b, keys_a, autojunk=False).get_opcodes()
    ]


def _pairs(a: list, b: list, ia, ib, pa: str, pb: str, out: list) -> None:
    for i, j in zip(ia, ib, strict=True):
        va = a[i]
        vb = b[j]
        if va == vb and type(va) is type(vb):
            continue
        _walk(va, vb, f"{pa}/{i}", f"{pb}/{j}", out)


def _match_keys(items: list) -> list | None:
    """The `type` (or `id`) of each element, or None when the elements are not all keyed objects."""
    keys = []
    for item in items:
        if type(item) is not dict:
            return None
        key = item.get("type", item.get("id"))
        if not isinstance(key, str):
            return None
        keys.append(key)
    return keys


def pointer_parts(pointer: str) -> list[str]:
    if not pointer:
        return []
    return [part.replace("~1", "/").replace("~0", "~") for part in pointer[1:].split("/")]


_REMOVED = object()


def json_changes_apply(a, changes: list[Change]):
    """`a` with the reported changes applied: equals `b` when the changes come from json_diff(a, b).

    Changes and removals are located in `a`, so they go first (removed array elements become
    placeholders, dropped afterwards so indexes stay valid); then additions, located in `b`,
    shallowest first, which rebuilds each array in `b`'s order before anything below it is placed.
    """
    import copy

    doc = {"": copy.deepcopy(a)}
    additions = []
    for change in changes:
        if change.kind == "array_length_changed":
            continue
        if change.kind == "field_added":
            additions.append(change)
            continue
        parent, key = _locate(doc, change.path)
        if change.kind == "field_removed":
            if isinstance(parent, list):
                parent[key] = _REMOVED
            else:
                del parent[key]
        else:
            parent[key] = copy.deepcopy(change.after)
    doc[""] = _purge(doc[""])
    for change in sorted(additions, key=lambda c: len(pointer_parts(c.path))):
        parent, key = _locate(doc, change.path)
        if isinstance(parent, list):
            parent.insert(key, copy.deepcopy(change.after))
        else:
            parent[key] = copy.deepcopy(change.after)
    return doc[""]


def _locate(doc: dict, pointer: str):
    parent, key = doc, ""
    for part in pointer_parts(pointer):
        parent = parent[key]
        key = int(part) if isinstance(parent, list) else part
    return parent, key


def _purge(value):
    if type(value) is list:
        return [_purge(item) for item in value if item is not _REMOVED]
    if type(value) is dict:
        return {key: _purge(item) for key, item in value.items()}
    return value
