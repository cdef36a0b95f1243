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
from types import SimpleNamespace

import pytest
import redis
from rq import Worker

from devtools.processes import BASE_DIR, PrivateRedis, free_port, wait_for

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
    wait_for(
        lambda: len(Worker.all(connection=make_run.redis)) == RQ_WORKERS * RQ_THREADS,
        message="the RQ workers",
    )

    started = time.monotonic()
    os.killpg(make_run.process.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
    make_run.process.wait(timeout=30)
    elapsed = time.monotonic() - started

    output = make_run.output()
    assert elapsed < 3, f"stopping took {elapsed:.1f}s:\n{output}"
    assert make_run.process.returncode == 0
    for trouble in ("SIGKILL", "cold shut down", "Traceback"):
        assert trouble not in output
    assert Worker.all(connection=make_run.redis) == []
