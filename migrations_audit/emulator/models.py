"""The Claude models the emulator knows, read from models.json (data, not code: see its `_about`).

A request names a model by its id or by one of its aliases; `Catalogue.resolve` says which model that
is, and whether it answers at a given "as of" date (released by then, not yet retired).
"""

import functools
import json
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

MODELS_FILE = Path(__file__).with_name("models.json")


@dataclass(frozen=True)
class Model:
    id: str
    display_name: str
    released: date | None
    deprecated: date | None
    retired: date | None
    aliases: tuple[str, ...] = ()
    rejects: tuple[str, ...] = ()
    thinking: str = "optional"
    source: str = ""

    def exists_on(self, day: date | None) -> bool:
        """Answers on `day` (None: any day, so every model that ever existed answers)."""
        if day is None:
            return True
        released = self.released is None or self.released <= day
        return released and (self.retired is None or day < self.retired)

    def lifecycle(self, day: date) -> str:
        if self.retired is not None and day >= self.retired:
            return "retired"
        if self.deprecated is not None and day >= self.deprecated:
            return "deprecated"
        return "active"


@dataclass(frozen=True)
class Rule:
    name: str
    message: str
    source: str


@dataclass(frozen=True)
class Catalogue:
    models: tuple[Model, ...]
    rules: dict[str, Rule] = field(default_factory=dict)

    @functools.cached_property
    def _by_name(self) -> dict[str, Model]:
        names = {}
        for model in self.models:
            for name in (model.id, *model.aliases):
                if name in names:
                    raise ValueError(f"models.json: {name} is listed twice")
                names[name] = model
        return names

    def find(self, name: str) -> Model | None:
        """The model an id or alias names, whatever its dates."""
        return self._by_name.get(name)

    def resolve(self, name: str, as_of: date | None) -> Model | None:
        """The model that answers to `name` on `as_of`, or None (unknown, not yet released, retired)."""
        model = self.find(name)
        return model if model is not None and model.exists_on(as_of) else None

    def listed(self, as_of: date | None) -> list[Model]:
        """The models list: newest release first; with a date, only the models released by then."""
        models = [m for m in self.models if as_of is None or m.released is None or m.released <= as_of]
        return sorted(models, key=lambda m: (m.released or date.max, m.id), reverse=True)


def _day(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


def load_catalogue(path: Path = MODELS_FILE) -> Catalogue:
    data = json.loads(path.read_text())
    rules = {
        name: Rule(name=name, message=rule["message"], source=rule["source"])
        for name, rule in data["rules"].items()
    }
    models = []
    for entry in data["models"]:
        unknown = set(entry.get("rejects", ())) - set(rules)
        if unknown:
            raise ValueError(f"models.json: {entry['id']} rejects unknown rules {sorted(unknown)}")
        if entry.get("thinking", "optional") not in ("optional", "always"):
            raise ValueError(f"models.json: {entry['id']} has thinking {entry['thinking']!r}")
        if not entry.get("source"):
            raise ValueError(f"models.json: {entry['id']} names no source")
        models.append(
            Model(
                id=entry["id"],
                display_name=entry["display_name"],
                released=_day(entry.get("released")),
                deprecated=_day(entry.get("deprecated")),
                retired=_day(entry.get("retired")),
                aliases=tuple(entry.get("aliases", ())),
                rejects=tuple(entry.get("rejects", ())),
                thinking=entry.get("thinking", "optional"),
                source=entry["source"],
            )
        )
    catalogue = Catalogue(models=tuple(models), rules=rules)
    catalogue._by_name  # noqa: B018 - fail on a duplicate name at load, not on first use
    return catalogue


@functools.cache
def catalogue() -> Catalogue:
    return load_catalogue()
