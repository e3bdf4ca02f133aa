"""What the benchmarks share: a throwaway install of the product (its own var/ directory, SQLite or a
fresh PostgreSQL database, a broker), started as real processes on free ports."""

import os
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.servers import free_port, stop, wait_for_http  # noqa: E402


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


def _tree(pid: int) -> list[int]:
    pids = [pid]
    try:
        children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
        pids += [int(child) for child in children]
    except OSError:
        pass
    return pids


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by a process and its children that are still running."""
    total = 0
    for one in _tree(pid):
        try:
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def user_cpu_seconds(user: str) -> float:
    """CPU time of every process of a system user (`postgres`), those that have already exited
    included: a server's reaped children (PostgreSQL's closed backends) count in its cutime."""
    uid = int(subprocess.run(["id", "-u", user], capture_output=True, text=True, check=True).stdout)
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid != uid:
                continue
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime
    return total / os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, idle) CPU seconds of the whole machine since boot, all cores together."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values) - idle) / os.sysconf("SC_CLK_TCK"), idle / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, in MB."""
    total = 0
    for one in _tree(pid):
        try:
            for line in Path(f"/proc/{one}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return round(total / 1024, 1)


@contextmanager
def install(*, database: str = "sqlite", broker: str = "filesystem"):
    """Environment for a fresh install: migrated, with the demo upstream `anthropic` (no traffic)."""
    with tempfile.TemporaryDirectory(prefix="ma-bench-") as var:
        env = {**os.environ, "MIGRATION_AUDIT_VAR_DIR": var, "STATIC_MANIFEST": "0", "LOG_LEVEL": "WARNING"}
        env["MIGRATION_AUDIT_UPSTREAM_HOSTS"] = "127.0.0.0/8"  # the emulator and the proxy on loopback
        pg_name = None
        if database == "postgres":
            pg_name = f"ma_bench_{uuid.uuid4().hex[:8]}"
            subprocess.run(
                ["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", f"CREATE DATABASE {pg_name}"], check=True
            )
            env["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{pg_name}"
        if broker == "redis":
            env["CELERY_BROKER_URL"] = "redis://127.0.0.1:6379/13"
            subprocess.run(["redis-cli", "-n", "13", "flushdb"], check=True, capture_output=True)
        try:
            manage(env, "migrate", "-v0")
            yield env
        finally:
            if pg_name:
                subprocess.run(
                    [
                        "psql",
                        "-h",
                        "127.0.0.1",
                        "-U",
                        "postgres",
                        "-qc",
                        f"DROP DATABASE IF EXISTS {pg_name} WITH (FORCE)",
                    ],
                    check=False,
                )


def manage(env: dict, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=check, capture_output=True, text=True
    )


def django_shell(env: dict, code: str) -> str:
    return manage(env, "shell", "-c", code).stdout


def upstream_setup(env: dict, base_url: str, *, rps: float = 10_000, concurrency: int = 64) -> None:
    """The upstream `anthropic` on `base_url`, with limits high enough not to be what is measured."""
    django_shell(
        env,
        f"""
from migrations_audit import services
team = services.team_create(name="Bench", slug="bench")
services.upstream_create(team=team, name="Anthropic", slug="anthropic", base_url={base_url!r},
    baseline_version="2023-06-01", target_version="2026-10-21", replay_key="sk-ant-bench",
    rate_limit_rps={rps}, rate_limit_concurrency={concurrency})
""",
    )


@contextmanager
def process(args: list[str], env: dict, *, ready_url: str | None = None, core: int | None = None, log=None):
    command = [sys.executable, *args]
    if core is not None:
        command = ["taskset", "-c", str(core), *command]
    child = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=log or subprocess.DEVNULL,
        stderr=subprocess.STDOUT if log else subprocess.DEVNULL,
    )
    try:
        if ready_url:
            wait_for_http(ready_url, timeout=60, process=child)
        yield child
    finally:
        stop(child)


@contextmanager
def emulator(env: dict, *, core: int | None = 0, extra: tuple = ()):
    port = free_port()
    with process(
        ["-m", "migrations_audit.emulator", "--port", str(port), *extra],
        env,
        ready_url=f"http://127.0.0.1:{port}/v1/models",
        core=core,
    ) as child:
        yield f"http://127.0.0.1:{port}", child


def wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False
