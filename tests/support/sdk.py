"""Real releases of the official `anthropic` Python SDK, each in its own cached virtualenv.

Tests run client code in a subprocess of the SDK's own interpreter, so that what reaches our servers is
exactly what that release sends. The virtualenvs live outside the work tree and survive between runs;
a file lock makes concurrent test processes build each one once.
"""

import fcntl
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

# The eras of the SDK the product must understand (see shared/reference/anthropic-versions.md).
SDK_RELEASES = {
    "0.2.10": "anthropic==0.2.10",
    "0.125.0": "anthropic==0.125.0",
    "1.17.0": "anthropic==1.17.0",
    "2": "anthropic>=2,<3",
}

CACHE_DIR = Path(
    os.environ.get("MIGRATION_AUDIT_SDK_CACHE", Path.home() / ".cache" / "migration-audit" / "sdk")
)


def sdk_python(release: str) -> Path:
    """The interpreter of a virtualenv holding `release` (a key of SDK_RELEASES), built on first use."""
    requirement = SDK_RELEASES[release]
    venv = CACHE_DIR / release
    python = venv / "bin" / "python"
    ready = venv / ".ready"
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(CACHE_DIR / f"{release}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not ready.exists():
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
            subprocess.run(
                [
                    str(python),
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    requirement,
                    "httpx",
                ],
                check=True,
            )
            ready.write_text(requirement)
    return python


def run_sdk(release: str, script: str, *, env: dict | None = None, timeout: float = 120) -> dict:
    """Run `script` with the SDK release's interpreter; the script prints one JSON object last.

    Returns that object. A failing script raises with its stderr, so a test shows what the SDK said.
    """
    completed = subprocess.run(
        [str(sdk_python(release)), "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )
    if completed.returncode != 0:
        raise AssertionError(f"SDK {release} script failed ({completed.returncode}):\n{completed.stderr}")
    last_line = completed.stdout.strip().splitlines()[-1]
    return json.loads(last_line)


def sdk_version(release: str) -> str:
    """The exact version installed for `release` (for '2', whichever 2.x PyPI served)."""
    return run_sdk(release, "import anthropic, json; print(json.dumps(anthropic.__version__))")
