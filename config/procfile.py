"""Run one of the Procfile's processes in place of this one: `python -m config.procfile web`.

The container's command (Dockerfile, docker-compose.yml), so the Procfile stays the one
definition of the processes everywhere. The process replaces this one (exec): in a container
it is PID 1 and gets the runtime's SIGTERM itself, with no supervisor in between to forward
it, to double it, or to read a `.env` over the environment.
"""

import os
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def procfile_processes() -> dict[str, str]:
    """The Procfile's processes: name → command."""
    processes = {}
    for line in (BASE_DIR / "Procfile").read_text().splitlines():
        name, separator, command = line.partition(":")
        if separator and name.strip() and not name.lstrip().startswith("#"):
            processes[name.strip()] = command.strip()
    return processes


def procfile_command(name: str) -> str:
    try:
        return procfile_processes()[name]
    except KeyError:
        raise KeyError(f"no {name!r} process in the Procfile") from None


def procfile_exec(name: str) -> None:
    """Become the Procfile's process `name`, started from the project's folder."""
    command = procfile_command(name)
    os.chdir(BASE_DIR)
    os.execvp("sh", ["sh", "-c", f"exec {command}"])


if __name__ == "__main__":
    names = ", ".join(procfile_processes())
    if len(sys.argv) != 2 or sys.argv[1] not in procfile_processes():
        sys.exit(f"usage: python -m config.procfile PROCESS (one of: {names})")
    procfile_exec(sys.argv[1])
