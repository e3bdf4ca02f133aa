"""Replay variants: what a replay target sends. A variant is a version header value plus optional
request rewrites: a model map (`a -> b`, or `* -> b` for every model), headers set or dropped, and
the key header's style (`x-api-key` or `Authorization: Bearer`, since SDK majors switch).

Spelled `VERSION[@MODEL]` on the command line, in the API and in compat_report (a version alone is
a variant, so plain versions keep working), or by a saved variant's name (ReplayVariant). A run
keeps each of its variants by label (`ReplayRun.variants`); results and differences carry the label
where they carried the version, so the diff compares variants as it compares versions.
"""

import json
import re
from dataclasses import asdict, dataclass, field

from migrations_audit.secrets import is_secret_header

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 +._-]{0,49}$")
KEY_STYLES = ("", "x-api-key", "bearer")


class VariantError(ValueError):
    """A variant that cannot be used; the message says why."""


@dataclass(frozen=True)
class Variant:
    label: str
    version: str
    model_map: dict[str, str] = field(default_factory=dict)
    set_headers: dict[str, str] = field(default_factory=dict)
    drop_headers: tuple[str, ...] = ()
    key_style: str = ""

    def as_dict(self) -> dict:
        return {**asdict(self), "drop_headers": list(self.drop_headers)}

    @classmethod
    def from_dict(cls, data: dict) -> "Variant":
        return cls(**{**data, "drop_headers": tuple(data.get("drop_headers") or ())})

    def model_for(self, model: str) -> str:
        return self.model_map.get(model) or self.model_map.get("*") or model

    @property
    def rewrites(self) -> bool:
        return bool(self.model_map or self.set_headers or self.drop_headers or self.key_style)


def model_map_parse(text: str) -> dict[str, str]:
    """`from -> to` per line (or comma), `*` for every model."""
    mapping = {}
    for line in re.split(r"[\n,]", text or ""):
        if not line.strip():
            continue
        source, arrow, target = line.partition("->")
        if not arrow or not source.strip() or not target.strip():
            raise VariantError(f"model map: {line.strip()!r} is not `model -> model` (or `* -> model`).")
        mapping[source.strip()] = target.strip()
    return mapping


def headers_parse(text: str) -> dict[str, str]:
    """`name: value` per line. A secret header (a key, a cookie) is refused: the only credential a
    replay sends is the upstream's."""
    headers = {}
    for line in (text or "").splitlines():
        if not line.strip():
            continue
        name, colon, value = line.partition(":")
        name = name.strip().lower()
        if not colon or not re.fullmatch(r"[a-z0-9-]+", name):
            raise VariantError(f"headers: {line.strip()!r} is not `name: value`.")
        if is_secret_header(name):
            raise VariantError(f"headers: {name} carries a secret; a replay's only key is the upstream's.")
        headers[name] = value.strip()
    return headers


def saved_variant(saved) -> Variant:
    """The Variant of a ReplayVariant row."""
    return Variant(
        label=saved.name,
        version=saved.version,
        model_map=model_map_parse(saved.model_map),
        set_headers=headers_parse(saved.set_headers),
        drop_headers=tuple(h.strip().lower() for h in saved.drop_headers.split(",") if h.strip()),
        key_style=saved.key_style,
    )


def variant_parse(spelled: str, *, upstream, known_versions: list[str] | None = None) -> Variant:
    """A saved variant's name, or `VERSION[@MODEL]` with a version the upstream knows."""
    spelled = spelled.strip()
    saved = upstream.variants.filter(name=spelled).first()
    if saved is not None:
        return saved_variant(saved)
    if known_versions is None:
        known_versions = list(upstream.versions.values_list("name", flat=True))
    version, at, model = spelled.partition("@")
    if version not in known_versions:
        saved_names = ", ".join(upstream.variants.values_list("name", flat=True))
        raise VariantError(
            f"{upstream.name} has no version {spelled} and no variant of that name (versions: "
            f"{', '.join(known_versions)}" + (f"; variants: {saved_names}" if saved_names else "") + ")."
        )
    if at and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,99}", model):
        raise VariantError(f"{spelled}: after @ comes a model id, e.g. 2026-10-21@claude-sonnet-5.")
    if len(spelled) > 50:
        raise VariantError(f"{spelled}: at most 50 characters.")
    return Variant(label=spelled, version=version, model_map={"*": model} if at else {})


def run_variant(run, label: str) -> Variant:
    """A run's variant by label (a run from before variants replayed plain versions)."""
    data = (run.variants or {}).get(label)
    return Variant.from_dict(data) if data else Variant(label=label, version=label)


def api_version_of(run, label: str) -> str:
    """The version header value a run's label sent: what changelog rules are about."""
    data = (run.variants or {}).get(label)
    return data["version"] if data else label


def request_rewrite(variant: Variant, headers: dict[str, str], document) -> tuple[dict[str, str], bool]:
    """Apply the variant's header and model rewrites (in place on `document`, a parsed JSON body or
    None). Returns the headers and whether the document changed."""
    for name in variant.drop_headers:
        headers.pop(name, None)
    headers.update(variant.set_headers)
    changed = False
    if isinstance(document, dict) and isinstance(document.get("model"), str) and variant.model_map:
        model = variant.model_for(document["model"])
        if model != document["model"]:
            document["model"] = model
            changed = True
    return headers, changed


def key_header(variant: Variant, upstream) -> str:
    if variant.key_style == "bearer":
        return "authorization"
    if variant.key_style == "x-api-key":
        return "x-api-key"
    return upstream.replay_key_header.lower()


def body_model(body: bytes) -> str:
    try:
        document = json.loads(body)
    except (ValueError, TypeError, RecursionError):
        return ""
    model = document.get("model") if isinstance(document, dict) else None
    return model[:100] if isinstance(model, str) else ""
