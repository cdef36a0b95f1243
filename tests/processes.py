"""The real processes tests and benchmarks start: the Procfile's, as honcho or a platform
would, and a private Redis and scratch databases of their own."""
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import redis
import requests

BASE_DIR = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def procfile_command(name: str) -> str:
    for line in (BASE_DIR / "Procfile").read_text().splitlines():
        process, _, command = line.partition(":")
        if process.strip() == name:
            return command.strip()
    raise KeyError(f"no {name!r} process in the Procfile")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def process_environment(**overrides: str) -> dict[str, str]:
    """The environment the suite runs in (database, Redis, secrets), plus overrides."""
    from django.conf import settings

    database = settings.DATABASES["default"]
    if database["ENGINE"].endswith("sqlite3"):
        database_url = f"sqlite:///{database['NAME']}"
    else:
        database_url = (
            f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}"
        )
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": database_url,
        "REDIS_URL": settings.REDIS_URL,
        "DEBUG": "False",
        "PYTHONUNBUFFERED": "1",
    }
    env.update(overrides)
    return env


class Process:
    """A Procfile process in its own process group, its output captured to a file."""

    def __init__(self, name: str, env: dict[str, str], log_dir: Path):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.popen = subprocess.Popen(
            ["sh", "-c", f"exec {procfile_command(name)}"],
            cwd=BASE_DIR,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout=timeout)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group, as a container runtime would."""
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, sig)

    def stop(self, timeout: float = 10) -> None:
        self.kill(signal.SIGTERM)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill(signal.SIGKILL)
            self.popen.wait(timeout=timeout)
        self._log.close()


def start_web(env: dict[str, str], log_dir: Path, timeout: float = 30) -> tuple[Process, str]:
    """Start `web:` on a free port and wait until it answers; returns it and its base URL."""
    port = free_port()
    process = Process("web", {**env, "PORT": str(port), "WEB_CONCURRENCY": env.get("WEB_CONCURRENCY", "2")}, log_dir)
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise RuntimeError(f"web exited early:\n{process.output()}")
        try:
            requests.get(f"{base_url}/privacy", timeout=1)
            return process, base_url
        except requests.ConnectionError:
            time.sleep(0.1)
    process.stop()
    raise RuntimeError(f"web did not answer within {timeout}s:\n{process.output()}")


def scratch_database_create(name: str) -> str:
    """A new, empty database `name` on DATABASE_URL's server (else the local one); its URL.

    For the benchmarks, which each work on a database of their own and drop it afterwards.
    """
    scratch_database_drop(name)
    _server_run(f"CREATE DATABASE {name}")
    return f"{_server_url()}/{name}"


def scratch_database_drop(name: str) -> None:
    _server_run(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _server_run(statement: str) -> None:
    with psycopg.connect(f"{_server_url()}/postgres", autocommit=True) as connection:
        connection.execute(statement)


def _server_url() -> str:
    return os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres").rsplit("/", 1)[0]


def wait_for(condition: Callable[[], Any], *, timeout: float = 20, message: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        time.sleep(0.05)


class PrivateRedis:
    """A redis-server of the test's own, which it may kill and restart (never the shared one)."""

    def __init__(self, *, data_dir: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.data_dir = data_dir
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.server: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        self.server = subprocess.Popen(
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.data_dir),
            ],
            stdout=subprocess.DEVNULL,
        )
        wait_for(self._answers, timeout=10, message="redis-server to start")

    def kill(self) -> None:
        self.server.kill()
        self.server.wait()

    def _answers(self) -> bool:
        try:
            return redis.Redis.from_url(self.url, socket_connect_timeout=0.5).ping()
        except redis.ConnectionError:
            return False


def process_stats() -> Iterator[tuple[int, str, list[str]]]:
    """Each running process's /proc/<pid>/stat (Linux): its pid, its name, and the fields after
    the name (state, ppid, pgrp, ...; utime, stime, cutime, cstime are 11-14)."""
    for stat_path in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat_path.read_text()
        except OSError:  # it exited meanwhile
            continue
        pid, rest = text.split(" (", 1)
        name, fields = rest.rsplit(") ", 1)  # a process name may hold spaces and parentheses
        yield int(pid), name, fields.split()


def process_descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for child, _, fields in process_stats():
        children.setdefault(int(fields[1]), []).append(child)
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found
