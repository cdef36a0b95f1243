"""`make run` as a newcomer runs it: in a fresh copy of the project, .env.example copied to .env
(plus a PORT, as an older .env had it), a PORT of their own in the environment, then Ctrl-C in
the terminal. Its code path runs in a process group of its own, as a terminal's foreground job,
on the copy's own SQLite (the embedded default) and a private Redis."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
import redis
from rq import Worker

from devtools.local import STOP_TIMEOUT_SECONDS
from devtools.processes import (
    BASE_DIR,
    CLOCK_TICKS,
    PrivateRedis,
    cpu_seconds,
    free_port,
    process_descendants,
    process_stats,
    wait_for,
)

pytestmark = pytest.mark.e2e

RQ_WORKERS, RQ_THREADS = 2, 32  # the defaults: a worker each thread of each process
# What a fresh clone does not have.
CLONE_LEAVES_OUT = (
    ".git",
    ".venv",
    ".env",
    "var",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    "test-artifacts",
)


@pytest.fixture(scope="module")
def make_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("make-run")
    clone = work / "clone"
    shutil.copytree(BASE_DIR, clone, ignore=shutil.ignore_patterns(*CLONE_LEAVES_OUT))
    port, port_in_env_file = free_port(), free_port()
    (clone / ".env").write_text((clone / ".env.example").read_text() + f"\nPORT={port_in_env_file}\n")
    redis_server = PrivateRedis(data_dir=work / "redis")
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", str(work)),
        "PORT": str(port),
        "REDIS_URL": redis_server.url,
        "PYTHONUNBUFFERED": "1",
    }
    log_path = work / "make-run.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "devtools.local", "run"],
            cwd=clone,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(
            lambda: process.poll() is not None or _health(port) == 200,
            timeout=120,
            message="make run to answer /api/health",
        )
        assert process.poll() is None, log_path.read_text()
        yield SimpleNamespace(
            process=process,
            port=port,
            port_in_env_file=port_in_env_file,
            redis=redis.Redis.from_url(redis_server.url),
            output=log_path.read_text,
        )
    finally:
        if process.poll() is None:
            # As Ctrl-C: make run stops the web and worker it started, which a SIGKILL of its
            # group would leave running.
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        redis_server.kill()


def _health(port: int, host: str = "127.0.0.1") -> int | None:
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/api/health", timeout=2) as response:
            return response.status
    except OSError:
        return None


def _stop_timed(process: subprocess.Popen, pids: list[int], *, timeout: float) -> tuple[float, float]:
    """Wait for `process` to end; its wall time, and that time less what the stopping processes
    (`pids`) spent ready to run while other processes held every CPU.

    A moment when none of them is ready to run (each waits: on a timer, a child, a socket)
    counts whole, however busy the machine: waiting is what "at once" rules out. A moment when
    one of them is, counts as far as a CPU was there for them: idle, or theirs, at most one. On
    an otherwise idle machine the two times are equal."""
    started = last = time.monotonic()
    last_free = _cpu_idle_seconds() + cpu_seconds(pids)
    not_starved = 0.0
    while process.poll() is None:
        if last - started > timeout:
            raise AssertionError(f"make run did not stop within {timeout}s")
        time.sleep(0.05)
        now, free = time.monotonic(), _cpu_idle_seconds() + cpu_seconds(pids)
        ready = any(fields[0] == "R" for pid, _, fields in process_stats() if pid in pids)
        not_starved += max(0.0, min(now - last, free - last_free)) if ready else now - last
        last, last_free = now, free
    return last - started, not_starved


def _cpu_idle_seconds() -> float:
    """Idle CPU time of the whole machine so far (all its CPUs, /proc/stat's idle and iowait)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    return (int(fields[4]) + int(fields[5])) / CLOCK_TICKS


def test_it_serves_on_the_port_the_environment_gives_not_the_env_files(make_run):
    assert _health(make_run.port) == 200
    assert _health(make_run.port_in_env_file) is None


def test_in_development_it_listens_on_this_machine_only(make_run):
    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection(("127.0.0.2", make_run.port), timeout=2),
    ):
        pass


def test_ctrl_c_stops_web_and_worker_at_once_and_cleanly(make_run):
    # Each worker past its start: rq registers a worker before it installs its signal handlers,
    # and only then leaves the "started" state (for idle, or busy with a periodic job).
    wait_for(
        lambda: (
            [worker.get_state() for worker in Worker.all(connection=make_run.redis)].count("started") == 0
            and len(Worker.all(connection=make_run.redis)) == RQ_WORKERS * RQ_THREADS
        ),
        message="the RQ workers",
    )

    stopping = [make_run.process.pid, *process_descendants(make_run.process.pid)]
    os.killpg(make_run.process.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
    elapsed, not_starved = _stop_timed(make_run.process, stopping, timeout=30)

    output = make_run.output()
    # Over in a second or two: no process waits for a timeout or a stuck worker. Under
    # pytest-xdist (or anything else busy on the machine) other processes may hold both cores
    # for part of it: the time the stopping processes were ready to run but had no CPU is not
    # theirs to answer for. And never as long as make run's own patience before it SIGKILLs.
    assert not_starved < 3, f"stopping took {not_starved:.1f}s less CPU waits ({elapsed:.1f}s):\n{output}"
    assert elapsed < STOP_TIMEOUT_SECONDS, f"stopping took {elapsed:.1f}s:\n{output}"
    assert make_run.process.returncode == 0
    for trouble in ("SIGKILL", "cold shut down", "Traceback"):
        assert trouble not in output
    assert Worker.all(connection=make_run.redis) == []
