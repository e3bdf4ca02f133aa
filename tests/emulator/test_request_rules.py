"""The request rules of 2026-10-21: each rejection, and the same request accepted under 2023-06-01."""

import pytest

from .conftest import MESSAGE, api_headers

CITATION = {
    "type": "char_location",
    "cited_text": "Foxes are small.",
    "document_index": 0,
    "start_char_index": 0,
    "end_char_index": 16,
}
DOCUMENT = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "Foxes."}}


def with_messages(*messages: dict) -> dict:
    return {**MESSAGE, "messages": list(messages)}


REJECTED = {
    "temperature 1.0 (its default)": ({**MESSAGE, "temperature": 1.0}, "temperature"),
    "temperature 0": ({**MESSAGE, "temperature": 0}, "temperature"),
    "temperature 0.7": ({**MESSAGE, "temperature": 0.7}, "temperature"),
    "top_p": ({**MESSAGE, "top_p": 0.9}, "top_p"),
    "top_k": ({**MESSAGE, "top_k": 40}, "top_k"),
    "document in an assistant message": (
        with_messages(
            {"role": "user", "content": "Read this."},
            {"role": "assistant", "content": [DOCUMENT]},
            {"role": "user", "content": "Thanks."},
        ),
        "messages.1.content.0",
    ),
    "text with citations in a user message": (
        with_messages({"role": "user", "content": [{"type": "text", "text": "Hi", "citations": [CITATION]}]}),
        "messages.0.content.0.citations",
    ),
    "text with citations inside a search_result": (
        with_messages(
            {
                "role": "user",
                "content": [
                    {
                        "type": "search_result",
                        "source": "https://example.com/foxes",
                        "title": "Foxes",
                        "content": [{"type": "text", "text": "Foxes.", "citations": [CITATION]}],
                    },
                    {"type": "text", "text": "Summarise."},
                ],
            }
        ),
        "messages.0.content.0.content.0.citations",
    ),
}


@pytest.mark.parametrize("case", list(REJECTED))
@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens"])
def test_2026_10_21_rejects_and_2023_06_01_accepts(http, case, path):
    body, named = REJECTED[case]
    if path.endswith("count_tokens"):
        body = {key: value for key, value in body.items() if key != "max_tokens"}
    rejected = http.post(path, headers=api_headers("2026-10-21"), json=body)
    assert rejected.status_code == 400
    error = rejected.json()
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert error["error"]["message"].startswith(f"{named}:")
    assert error["request_id"] == rejected.headers["request-id"]
    accepted = http.post(path, headers=api_headers("2023-06-01"), json=body)
    assert accepted.status_code == 200, accepted.text


def test_sampling_rejection_names_the_field_like_the_real_api(http):
    response = http.post(
        "/v1/messages", headers=api_headers("2026-10-21"), json={**MESSAGE, "temperature": 1.0}
    )
    assert response.json()["error"]["message"] == "temperature: Extra inputs are not permitted"


@pytest.mark.parametrize(
    "body",
    [
        with_messages({"role": "user", "content": [{"type": "text", "text": "Hi", "citations": []}]}),
        with_messages({"role": "user", "content": [{"type": "text", "text": "Hi", "citations": None}]}),
        with_messages({"role": "user", "content": [DOCUMENT, {"type": "text", "text": "Summarise."}]}),
        with_messages(
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": [{"type": "text", "text": "Hello", "citations": [CITATION]}]},
            {"role": "user", "content": "More."},
        ),
    ],
    ids=["empty citations", "null citations", "document in a user message", "citations from the assistant"],
)
def test_2026_10_21_accepts_what_the_rules_leave_alone(http, body):
    assert http.post("/v1/messages", headers=api_headers("2026-10-21"), json=body).status_code == 200


def test_text_completions_keep_sampling_parameters_under_2026_10_21(http):
    body = {
        "model": "claude-2.1",
        "prompt": "\n\nHuman: Hi\n\nAssistant:",
        "max_tokens_to_sample": 20,
        "temperature": 0.5,
    }
    assert http.post("/v1/complete", headers=api_headers("2026-10-21"), json=body).status_code == 200
