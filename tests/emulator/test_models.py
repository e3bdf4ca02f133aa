"""The models the emulator answers: the data file, the "as of" date, the models list, per-model rules."""

import json
from datetime import date

import httpx
import pytest

from migrations_audit.emulator.models import MODELS_FILE, catalogue, load_catalogue
from migrations_audit.model_rules import model_matches, model_ruleset_load

from .conftest import MESSAGE, api_headers, emulator_running

COMPLETE_2023 = {"prompt": "\n\nHuman: Hi\n\nAssistant:", "max_tokens_to_sample": 20}
REAL_CLIENT_IDS = [
    # 2023 clients (Text Completions)
    "claude-v1",
    "claude-v1.3",
    "claude-v1-100k",
    "claude-instant-v1",
    "claude-instant-1",
    "claude-instant-1.1",
    "claude-instant-1.2",
    "claude-2",
    "claude-2.0",
    "claude-2.1",
    # 2024-2025, dated and undated
    "claude-3-opus-20240229",
    "claude-3-haiku-20240307",
    "claude-3-5-sonnet-20241022",
    "claude-3-7-sonnet-20250219",
    "claude-sonnet-4-20250514",
    "claude-sonnet-4-0",
    "claude-opus-4-1-20250805",
    "claude-sonnet-4-5-20250929",
    "claude-sonnet-4-5",
    "claude-haiku-4-5-20251001",
    "claude-haiku-4-5",
    # 2026
    "claude-opus-4-6",
    "claude-sonnet-4-6",
    "claude-opus-4-7",
    "claude-opus-4-8",
    "claude-sonnet-5",
    "claude-opus-5",
    "claude-fable-5",
]


def test_every_entry_of_the_data_file_has_dates_in_order_and_a_source():
    data = json.loads(MODELS_FILE.read_text())
    for entry in data["models"]:
        assert entry["source"], entry["id"]
        dates = [date.fromisoformat(entry[k]) for k in ("released", "deprecated", "retired") if entry.get(k)]
        assert dates == sorted(dates), entry["id"]
    for rule in model_ruleset_load("anthropic"):
        assert rule.error_message and rule.source, rule.key


def test_the_reference_ids_are_all_known_and_aliases_resolve_to_their_model():
    known = catalogue()
    assert all(known.find(name) for name in REAL_CLIENT_IDS)
    assert known.find("claude-instant-1").id == "claude-instant-1.0"
    assert known.find("claude-v1").id == "claude-1.0"
    assert known.find("claude-sonnet-4-5").id == "claude-sonnet-4-5-20250929"
    assert known.find("claude-99") is None


def test_as_of_a_date_a_model_answers_between_its_release_and_its_retirement():
    known = catalogue()
    assert known.resolve("claude-instant-1", None)  # no date: every model that ever existed
    assert known.resolve("claude-instant-1", date(2023, 6, 1))
    assert known.resolve("claude-instant-1", date(2024, 11, 5))
    assert known.resolve("claude-instant-1", date(2024, 11, 6)) is None  # retired that day
    assert known.resolve("claude-sonnet-5", date(2026, 6, 29)) is None  # not released yet
    assert known.resolve("claude-sonnet-5", date(2026, 6, 30))
    assert known.resolve("claude-sonnet-4-5", date(2026, 11, 29))
    assert known.resolve("claude-sonnet-4-5", date(2026, 11, 30)) is None
    listed = [m.id for m in known.listed(date(2023, 12, 31))]
    assert "claude-2.1" in listed and "claude-3-opus-20240229" not in listed


def test_a_broken_data_file_fails_at_load(tmp_path):
    data = json.loads(MODELS_FILE.read_text())
    data["models"].append({**data["models"][0], "id": "claude-new", "aliases": ["claude-v1"]})
    path = tmp_path / "models.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="claude-v1 is listed twice"):
        load_catalogue(path)
    # What a model rejects lives in the product's model rules, never here.
    data["models"][-1] = {**data["models"][0], "id": "claude-new", "aliases": [], "rejects": ["temperature"]}
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"anthropic-models\.json"):
        load_catalogue(path)


@pytest.mark.parametrize("model", REAL_CLIENT_IDS)
def test_messages_answer_every_real_model_id_by_default(http, model):
    response = http.post("/v1/messages", headers=api_headers("2023-06-01"), json={**MESSAGE, "model": model})
    assert response.status_code == 200, response.text
    # As the real API: the answer names the snapshot the alias stands for.
    assert response.json()["model"] == catalogue().find(model).id


@pytest.mark.parametrize(
    "model", ["claude-v1", "claude-instant-1", "claude-2", "claude-v1.3", "claude-instant-v1"]
)
def test_a_2023_client_gets_a_2023_completion(http, model):
    response = http.post(
        "/v1/complete", headers=api_headers("2023-01-01"), json={**COMPLETE_2023, "model": model}
    )
    assert response.status_code == 200, response.text
    assert response.json()["exception"] is None and response.json()["model"] == model


def test_as_of_header_retired_and_unreleased_models_answer_404_naming_the_model(http):
    cases = [
        # path, body, a day it fails, version, a day it answers
        (
            "/v1/complete",
            {**COMPLETE_2023, "model": "claude-instant-1"},
            "2024-11-06",
            "2023-01-01",
            "2023-09-01",
        ),
        ("/v1/messages", {**MESSAGE, "model": "claude-2.1"}, "2025-07-21", "2023-06-01", "2024-01-01"),
        ("/v1/messages", {**MESSAGE, "model": "claude-sonnet-4-5"}, "2026-12-01", "2026-10-21", "2026-11-29"),
        ("/v1/messages", {**MESSAGE, "model": "claude-sonnet-5"}, "2026-01-01", "2026-10-21", "2026-06-30"),
    ]
    for path, body, gone, version, there in cases:
        headers = api_headers(version, **{"x-emulator-as-of": gone})
        response = http.post(path, headers=headers, json=body)
        assert response.status_code == 404, (body["model"], gone)
        assert response.json()["error"] == {"type": "not_found_error", "message": f"model: {body['model']}"}
        assert http.post(path, headers={**headers, "x-emulator-as-of": there}, json=body).status_code == 200
    bad = http.post(
        "/v1/messages", headers=api_headers("2023-06-01", **{"x-emulator-as-of": "May 1"}), json=MESSAGE
    )
    assert bad.status_code == 400 and bad.json()["error"]["message"].startswith("x-emulator-as-of:")


def test_the_server_as_of_option_and_the_header_overriding_it():
    with emulator_running("--as-of", "2023-07-01") as url:
        headers = api_headers("2023-01-01")
        legacy = httpx.post(
            f"{url}/v1/complete", headers=headers, json={**COMPLETE_2023, "model": "claude-v1"}
        )
        assert legacy.status_code == 200
        modern = httpx.post(f"{url}/v1/messages", headers=headers, json=MESSAGE)  # Haiku 4.5: 2025
        assert modern.status_code == 404
        later = {**api_headers("2023-06-01"), "x-emulator-as-of": "2026-01-01"}
        assert httpx.post(f"{url}/v1/messages", headers=later, json=MESSAGE).status_code == 200
        listed = httpx.get(f"{url}/v1/models?limit=1000", headers=headers).json()
        ids = {model["id"] for model in listed["data"]}
        assert "claude-1.0" in ids and "claude-2.1" not in ids and "claude-haiku-4-5-20251001" not in ids


def test_models_list_pages_forwards_and_backwards_newest_first(http):
    headers = api_headers("2023-06-01")
    everything = http.get("/v1/models", headers=headers, params={"limit": 1000}).json()
    ids = [model["id"] for model in everything["data"]]
    assert everything["has_more"] is False and len(ids) == len(catalogue().models)
    assert ids.index("claude-opus-5") < ids.index("claude-sonnet-5") < ids.index("claude-2.1")
    assert (everything["first_id"], everything["last_id"]) == (ids[0], ids[-1])
    collected, after = [], None
    while True:
        params = {"limit": 7, **({"after_id": after} if after else {})}
        page = http.get("/v1/models", headers=headers, params=params).json()
        collected += [model["id"] for model in page["data"]]
        assert page["last_id"] == page["data"][-1]["id"]
        if not page["has_more"]:
            break
        after = page["last_id"]
    assert collected == ids
    before = http.get("/v1/models", headers=headers, params={"limit": 3, "before_id": ids[5]}).json()
    assert [m["id"] for m in before["data"]] == ids[2:5] and before["has_more"] is True
    default = http.get("/v1/models", headers=headers).json()
    assert len(default["data"]) == 20 and default["has_more"] is True
    for params in ({"limit": 0}, {"limit": "x"}, {"after_id": "claude-99"}):
        assert http.get("/v1/models", headers=headers, params=params).status_code == 400


def test_model_objects_carry_lifecycle_and_an_alias_resolves(http):
    headers = api_headers("2023-06-01")
    model = http.get("/v1/models/claude-sonnet-4-5", headers=headers).json()
    assert model["id"] == "claude-sonnet-4-5-20250929" and model["type"] == "model"
    assert model["created_at"] == "2025-09-29T00:00:00Z"
    as_of = {**headers, "x-emulator-as-of": "2026-10-01"}
    then = http.get("/v1/models/claude-sonnet-4-5", headers=as_of).json()
    assert then["lifecycle"] == "deprecated" and then["retires_at"] == "2026-11-30T00:00:00Z"
    active = http.get("/v1/models/claude-sonnet-5", headers=headers).json()
    assert active["lifecycle"] == "active" and active["retires_at"] is None
    assert (
        http.get(
            "/v1/models/claude-sonnet-5", headers={**headers, "x-emulator-as-of": "2026-01-01"}
        ).status_code
        == 404
    )
    retired = http.get("/v1/models", headers=headers, params={"lifecycle": "retired", "limit": 1000}).json()
    assert {m["lifecycle"] for m in retired["data"]} == {"retired"}
    assert "claude-2.1" in {m["id"] for m in retired["data"]}
    # The SDKs send a list as `lifecycle[]=...` repeated.
    both = http.get(
        "/v1/models?lifecycle[]=deprecated&lifecycle[]=retired&limit=1000", headers=headers
    ).json()
    assert {m["lifecycle"] for m in both["data"]} == {"deprecated", "retired"}


THINKING_BUDGET = {"type": "enabled", "budget_tokens": 1024}
PREFILL = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello,"}]
MODEL_RULES = {
    # rule key: model, extra body, a model that accepts the same request
    "opus-4-8-temperature": ("claude-opus-4-8", {"temperature": 0.5}, "claude-opus-4-7"),
    "sonnet-5-thinking-budget-tokens": (
        "claude-sonnet-5",
        {"thinking": THINKING_BUDGET},
        "claude-sonnet-4-6",
    ),
    "opus-4-7-thinking-budget-tokens": ("claude-opus-4-7", {"thinking": THINKING_BUDGET}, "claude-opus-4-6"),
    "opus-4-8-thinking-budget-tokens": ("claude-opus-4-8", {"thinking": THINKING_BUDGET}, "claude-opus-5"),
    "fable-5-thinking-budget-tokens": ("claude-fable-5", {"thinking": THINKING_BUDGET}, "claude-haiku-4-5"),
    "fable-5-thinking-disabled": ("claude-fable-5", {"thinking": {"type": "disabled"}}, "claude-sonnet-5"),
    "opus-4-6-assistant-prefill": ("claude-opus-4-6", {"messages": PREFILL}, "claude-sonnet-4-5"),
    "sonnet-4-6-assistant-prefill": ("claude-sonnet-4-6", {"messages": PREFILL}, "claude-opus-4-1"),
}


def test_every_model_rule_of_the_data_file_is_exercised_here():
    assert set(MODEL_RULES) == {rule.key for rule in model_ruleset_load("anthropic")}


@pytest.mark.parametrize("key", list(MODEL_RULES))
def test_newer_models_answer_exactly_the_error_their_model_rule_states(http, key):
    """The emulator process answers the status, type and message of the product's model rule
    (diff/rulesets/anthropic-models.json), and an older model accepts the same request."""
    rule = next(rule for rule in model_ruleset_load("anthropic") if rule.key == key)
    model, extra, older = MODEL_RULES[key]
    body = {**MESSAGE, "max_tokens": 2048, **extra}
    for path in ("/v1/messages", "/v1/messages/count_tokens"):
        if path.endswith("count_tokens"):
            body = {k: v for k, v in body.items() if k != "max_tokens"}
        rejected = http.post(path, headers=api_headers("2023-06-01"), json={**body, "model": model})
        assert rejected.status_code == rule.error_status, rejected.text
        assert rejected.json()["error"] == {"type": rule.error_type, "message": rule.error_message}
        accepted = http.post(path, headers=api_headers("2023-06-01"), json={**body, "model": older})
        assert accepted.status_code == 200, accepted.text


def test_the_emulator_applies_to_each_model_name_the_rules_the_product_matches():
    """Emulator (model id and aliases) and request check (the name a request sends) agree on every
    name a client may send."""
    known = catalogue()
    rules = model_ruleset_load("anthropic")
    for model in known.models:
        for name in (model.id, *model.aliases):
            product = {rule.key for rule in rules if model_matches(rule.model_pattern, name)}
            assert {rule.key for rule in known.rules_for(known.find(name))} == product, name
    # The reference's table, model by model.
    assert {m.id: sorted(r.key for r in known.rules_for(m)) for m in known.models if known.rules_for(m)} == {
        "claude-opus-4-6": ["opus-4-6-assistant-prefill"],
        "claude-sonnet-4-6": ["sonnet-4-6-assistant-prefill"],
        "claude-opus-4-7": ["opus-4-7-thinking-budget-tokens"],
        "claude-opus-4-8": ["opus-4-8-temperature", "opus-4-8-thinking-budget-tokens"],
        "claude-fable-5": ["fable-5-thinking-budget-tokens", "fable-5-thinking-disabled"],
        "claude-sonnet-5": ["sonnet-5-thinking-budget-tokens"],
    }


def test_the_version_rule_comes_before_the_model_rule(http):
    body = {**MESSAGE, "model": "claude-opus-4-8", "temperature": 1.0}
    response = http.post("/v1/messages", headers=api_headers("2026-10-21"), json=body)
    assert response.json()["error"]["message"] == "temperature: Extra inputs are not permitted"
