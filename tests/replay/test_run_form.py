"""One run form for the page, the API and the command: the same input gives the same run arguments,
and the same mistakes the same words."""

from django.http import QueryDict

from migrations_audit.replay.forms import RunForm


def test_the_page_the_api_and_the_command_give_the_same_run():
    page = QueryDict(mutable=True)
    page.setlist("versions", ["2023-06-01", "2026-10-21"])
    page.update(
        {"client": "7", "since": "2026-11-01", "streamed": "yes", "sample": "50", "noise_percent": "20"}
    )
    api = {
        "versions": ["2023-06-01", "2026-10-21"],
        "client": 7,
        "since": "2026-11-01",
        "streamed": True,
        "sample": 50,
        "noise_sample_rate": 0.2,
    }
    command = {
        "versions": "2023-06-01, 2026-10-21",
        "client": "7",
        "since": "2026-11-01",
        "streamed": "yes",
        "sample": 50,
        "noise_sample_rate": 0.2,
    }
    parsed = []
    for data in (page, api, command):
        form = RunForm(data)
        assert form.is_valid(), form.errors
        parsed.append(form.run_arguments())
    assert parsed[0] == parsed[1] == parsed[2]
    assert parsed[0] == {
        "versions": ["2023-06-01", "2026-10-21"],
        "selection": {"client": 7, "since": "2026-11-01T00:00:00+00:00", "streamed": True, "sample": 50},
        "noise_sample_rate": 0.2,
        "token_budget": None,
    }


def test_mistakes_are_named():
    cases = {
        "client": ("abc", "client must be a client id."),
        "since": ("2026-13-45", "since must be a date or an ISO 8601 time."),
        "sample": ("0", "sample must be at least 1."),
    }
    for name, (value, message) in cases.items():
        form = RunForm({"versions": ["2023-06-01"], name: value})
        assert not form.is_valid()
        assert message in form.error_text()
    assert "Choose at least one version" in RunForm({}).error_text()
    assert "must be a list of version names" in RunForm({"versions": [1, 2]}).error_text()
