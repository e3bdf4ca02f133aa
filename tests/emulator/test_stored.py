"""Message Batches and the Files API: the endpoints that remember, over real HTTP."""

import json
import os

import httpx

from .conftest import KEY, MESSAGE, api_headers, emulator_running


def test_a_batch_is_created_in_progress_then_ends_with_jsonl_results(http):
    requests = [
        {"custom_id": "plain", "params": MESSAGE},
        {"custom_id": "sampled", "params": {**MESSAGE, "temperature": 0.3}},
        {"custom_id": "gone", "params": {**MESSAGE, "model": "claude-99"}},
    ]
    for version, errored in (("2023-06-01", 1), ("2026-10-21", 2)):
        created = http.post("/v1/messages/batches", headers=api_headers(version), json={"requests": requests})
        assert created.status_code == 200, created.text
        batch = created.json()
        assert batch["id"].startswith("msgbatch_") and batch["type"] == "message_batch"
        assert batch["processing_status"] == "in_progress" and batch["results_url"] is None
        assert batch["request_counts"] == {
            "processing": 3,
            "succeeded": 0,
            "errored": 0,
            "canceled": 0,
            "expired": 0,
        }
        ended = http.get(f"/v1/messages/batches/{batch['id']}", headers=api_headers(version)).json()
        assert ended["processing_status"] == "ended" and ended["ended_at"]
        assert ended["request_counts"]["succeeded"] == 3 - errored
        assert ended["request_counts"]["errored"] == errored
        assert (
            ended["results_url"]
            == f"{str(http.base_url).rstrip('/')}/v1/messages/batches/{batch['id']}/results"
        )
        results = httpx.get(ended["results_url"], headers=api_headers(version))
        assert results.status_code == 200
        lines = [json.loads(line) for line in results.text.splitlines()]
        assert [line["custom_id"] for line in lines] == ["plain", "sampled", "gone"]
        assert lines[0]["result"]["type"] == "succeeded"
        message = lines[0]["result"]["message"]
        assert message["type"] == "message" and message["usage"]["service_tier"] == "batch"
        gone = lines[2]["result"]
        assert gone["type"] == "errored"
        assert gone["error"]["error"] == {"type": "not_found_error", "message": "model: claude-99"}
        # 2026-10-21 applies to each request of a batch created with it.
        assert lines[1]["result"]["type"] == ("errored" if version == "2026-10-21" else "succeeded")


def test_batch_list_pages_delete_and_errors(http):
    ids = []
    for index in range(3):
        body = {"requests": [{"custom_id": f"r{index}", "params": MESSAGE}]}
        ids.append(
            http.post("/v1/messages/batches", headers=api_headers("2023-06-01"), json=body).json()["id"]
        )
    page = http.get("/v1/messages/batches", headers=api_headers("2023-06-01"), params={"limit": 2}).json()
    assert [b["id"] for b in page["data"]] == [ids[2], ids[1]] and page["has_more"] is True
    following = http.get(
        "/v1/messages/batches", headers=api_headers("2023-06-01"), params={"limit": 2, "after_id": ids[1]}
    ).json()
    assert following["data"][0]["id"] == ids[0]
    deleted = http.delete(f"/v1/messages/batches/{ids[0]}", headers=api_headers("2023-06-01"))
    assert deleted.json() == {"id": ids[0], "type": "message_batch_deleted"}
    missing = http.get(f"/v1/messages/batches/{ids[0]}", headers=api_headers("2023-06-01"))
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"
    for body in (
        {},
        {"requests": []},
        {"requests": [{"custom_id": "a", "params": MESSAGE}, {"custom_id": "a", "params": MESSAGE}]},
        {"requests": [{"params": MESSAGE}]},
    ):
        response = http.post("/v1/messages/batches", headers=api_headers("2023-06-01"), json=body)
        assert response.status_code == 400, body


def test_a_slow_batch_can_be_canceled():
    with emulator_running("--batch-seconds", "3600") as url:
        headers = api_headers("2023-06-01")
        body = {"requests": [{"custom_id": "a", "params": MESSAGE}]}
        batch = httpx.post(f"{url}/v1/messages/batches", headers=headers, json=body).json()
        still = httpx.get(f"{url}/v1/messages/batches/{batch['id']}", headers=headers).json()
        assert still["processing_status"] == "in_progress"
        assert (
            httpx.get(f"{url}/v1/messages/batches/{batch['id']}/results", headers=headers).status_code == 404
        )
        canceled = httpx.post(f"{url}/v1/messages/batches/{batch['id']}/cancel", headers=headers).json()
        assert canceled["processing_status"] == "ended" and canceled["cancel_initiated_at"]
        assert canceled["request_counts"]["canceled"] == 1
        results = httpx.get(canceled["results_url"], headers=headers).text.splitlines()
        assert json.loads(results[0]) == {"custom_id": "a", "result": {"type": "canceled"}}


def test_files_upload_metadata_list_download_and_delete(http):
    payload = os.urandom(4096) + b"\r\n--not-a-boundary\r\n\x00"
    headers = {"x-api-key": KEY, "anthropic-version": "2023-06-01", "anthropic-beta": "files-api-2025-04-14"}
    uploaded = http.post(
        "/v1/files", headers=headers, files={"file": ("scan.pdf", payload, "application/pdf")}
    )
    assert uploaded.status_code == 200, uploaded.text
    meta = uploaded.json()
    assert meta["type"] == "file" and meta["id"].startswith("file_")
    assert (meta["filename"], meta["mime_type"], meta["size_bytes"]) == (
        "scan.pdf",
        "application/pdf",
        len(payload),
    )
    assert meta["created_at"].endswith("Z")
    assert http.get(f"/v1/files/{meta['id']}", headers=headers).json() == meta
    listed = http.get("/v1/files", headers=headers).json()
    assert listed["data"][0] == meta and listed["first_id"] == meta["id"]
    content = http.get(f"/v1/files/{meta['id']}/content", headers=headers)
    assert content.status_code == 200 and content.content == payload
    assert content.headers["content-type"] == "application/pdf"
    assert http.delete(f"/v1/files/{meta['id']}", headers=headers).json() == {
        "id": meta["id"],
        "type": "file_deleted",
    }
    assert http.get(f"/v1/files/{meta['id']}", headers=headers).status_code == 404
    no_file = http.post("/v1/files", headers=headers, files={"other": ("a.txt", b"x", "text/plain")})
    assert no_file.status_code == 400
    not_multipart = http.post(
        "/v1/files", headers={**headers, "content-type": "application/json"}, content=b"{}"
    )
    assert not_multipart.status_code == 400
    hostile = http.post("/v1/files", headers=headers, files={"file": ('a"\r\nx: y.txt', b"hi", "text/plain")})
    download = http.get(f"/v1/files/{hostile.json()['id']}/content", headers=headers)
    assert "x: y" not in download.headers.get("x", "") and "\n" not in download.headers["content-disposition"]
