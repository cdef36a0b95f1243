"""The web process's gunicorn settings, seen on the running process."""

import os
from pathlib import Path

import pytest

from devtools.processes import start_web
from tests.processes import process_environment


@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="no /dev/shm on this system")
def test_web_workers_keep_their_heartbeat_files_in_memory(tmp_path):
    web, _ = start_web(process_environment(WEB_CONCURRENCY="1"), tmp_path)
    try:
        [worker] = Path(f"/proc/{web.popen.pid}/task/{web.popen.pid}/children").read_text().split()
        open_files = [_link(fd) for fd in Path(f"/proc/{worker}/fd").iterdir()]
    finally:
        web.stop()
    assert any(path.startswith("/dev/shm/") for path in open_files), open_files


def _link(fd: Path) -> str:
    """Where an open file descriptor points; empty if the worker closed it meanwhile (a request's socket)."""
    try:
        return os.readlink(fd)
    except FileNotFoundError:
        return ""
