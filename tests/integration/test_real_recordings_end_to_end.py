"""Recordings of the real API (tests/fixtures/recordings), imported through the NDJSON ingest API and
replayed on the emulator under the version they were recorded with by a real worker: the product's own
diff of recorded against replayed finds nothing but noise. The day a user compares real recordings with
the emulator, it must not cry wolf."""

import httpx
import pytest

from migrations_audit import services
from migrations_audit.models import DifferenceSignature, Exchange, ReplayResult, ReplayRun
from migrations_audit.replay.runs import run_start
from tests.emulator.test_real_recordings import CORPUS, RECORDINGS
from tests.integration.test_end_to_end import wait_for

pytestmark = pytest.mark.slow


def test_real_recordings_replayed_on_the_emulator_differ_only_by_noise(product):
    upstream = product["upstream"]
    token = services.api_token_create(team=upstream.team, name="fidelity")[1]
    answer = httpx.post(
        f"{product['web']}/api/v1/upstreams/{upstream.slug}/exchanges",
        content=CORPUS.read_bytes(),
        headers={"authorization": f"Bearer {token}", "content-type": "application/x-ndjson"},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == len(RECORDINGS), answer.json()
    assert set(Exchange.objects.filter(upstream=upstream).values_list("api_version", flat=True)) == {
        "2023-06-01"
    }

    run = run_start(upstream=upstream, versions=["2023-06-01"], noise_sample_rate=1.0)
    wait_for(
        lambda: not ReplayRun.objects.filter(pk=run.pk, status="running").exists(),
        timeout=180,
        what="the run to finish",
    )
    assert ReplayRun.objects.get(pk=run.pk).status == "completed"
    replayed = ReplayResult.objects.filter(run=run, attempt=1)
    assert replayed.count() == len(RECORDINGS)
    assert sorted(replayed.values_list("status", flat=True)) == sorted(r["status"] for r in RECORDINGS)

    found = DifferenceSignature.objects.filter(upstream=upstream, exchanges__gt=0)
    not_noise = [
        f"{s.endpoint} {s.kind} {s.path} {s.classification}" for s in found if s.classification != "noise"
    ]
    assert not_noise == []
    # The diff did compare them: what differs by nature (ids, generated text) is there, as noise.
    noise = set(found.values_list("path", flat=True))
    assert "/id" in noise, noise
    print(sorted(noise))
