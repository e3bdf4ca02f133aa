"""The Claude models the emulator knows, read from models.json (data, not code: see its `_about`).

A request names a model by its id or by one of its aliases; `Catalogue.resolve` says which model that
is, and whether it answers at a given "as of" date (released by then, not yet retired).

What a model rejects in a request comes from the product's own model rules
(diff/rulesets/anthropic-models.json, read with the pure migrations_audit.model_rules, no Django), so that the
emulator answers exactly the error that the product's request check predicts.
"""

import functools
import json
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from migrations_audit.model_rules import ModelRuleSpec, model_matches, model_ruleset_load

MODELS_FILE = Path(__file__).with_name("models.json")


@dataclass(frozen=True)
class Model:
    id: str
    display_name: str
    released: date | None
    deprecated: date | None
    retired: date | None
    aliases: tuple[str, ...] = ()
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
class Catalogue:
    models: tuple[Model, ...]
    rules: tuple[ModelRuleSpec, ...] = field(default_factory=tuple)

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

    def rules_for(self, model: Model) -> list[ModelRuleSpec]:
        """The model rules a model applies (on top of the version's), in the rules file's order: a
        rule's pattern matches its id or one of its aliases."""
        names = (model.id, *model.aliases)
        return [rule for rule in self.rules if any(model_matches(rule.model_pattern, name) for name in names)]

    def listed(self, as_of: date | None) -> list[Model]:
        """The models list: newest release first; with a date, only the models released by then."""
        models = [m for m in self.models if as_of is None or m.released is None or m.released <= as_of]
        return sorted(models, key=lambda m: (m.released or date.max, m.id), reverse=True)


def _day(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


def load_catalogue(path: Path = MODELS_FILE, rules: list[ModelRuleSpec] | None = None) -> Catalogue:
    data = json.loads(path.read_text())
    models = []
    for entry in data["models"]:
        if "rejects" in entry:
            raise ValueError(
                f"models.json: {entry['id']} names rules: they live in diff/rulesets/anthropic-models.json"
            )
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
                thinking=entry.get("thinking", "optional"),
                source=entry["source"],
            )
        )
    if rules is None:
        rules = model_ruleset_load("anthropic")
    catalogue = Catalogue(models=tuple(models), rules=tuple(rules))
    catalogue._by_name  # noqa: B018 - fail on a duplicate name at load, not on first use
    return catalogue


@functools.cache
def catalogue() -> Catalogue:
    return load_catalogue()
