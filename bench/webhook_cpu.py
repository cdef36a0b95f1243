"""CPU per webhook request in one warm process: the handshake GET and a signed message POST.

Runs the whole view stack (Django's WSGI handler, every middleware, the real services) in
this process, against PostgreSQL and a private Redis, with no HTTP server, load generator or
other worker on the cores. It tells how much Python a change costs or saves, which
bench/ingest's requests/s on a shared two-core machine can hide in its run-to-run spread.
Rounds alternate the handshake and the ingest so that a drift of the machine hits both;
the report gives the median over the rounds of CPU (`time.process_time`) per request.

CPU time on a shared machine still drifts by 5-10% between runs. With --instructions the
script reruns itself under valgrind's callgrind and counts the instructions each request
executes instead (one round, after the same warm-up): the same code gives the same count
to a fraction of a percent, so two versions of a change can be told apart in one run each.
Instructions leave out the kernel (system calls, so the round trips) and cache misses;
the CPU time includes them.

    .venv/bin/python bench/webhook_cpu.py [--requests 3000] [--rounds 5]
    .venv/bin/python bench/webhook_cpu.py --instructions [--requests 300]

Creates its own database (msgr_bench_webhook_cpu) on DATABASE_URL's server (default
postgres://postgres@127.0.0.1:5432) and drops it afterwards; needs redis-server.
See docs/bench-ingest.md for the numbers on the project's machine.
"""
import argparse
import io
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.processes import PrivateRedis, free_port, scratch_database_create, scratch_database_drop  # noqa: E402

DATABASE_NAME = "msgr_bench_webhook_cpu"
MESSAGES_PER_SENDER = 10  # the default rate limit: every message is stored and queued
# Set in the copy of this script that runs under callgrind: where its counts are dumped.
CALLGRIND_DIR = "BENCH_CALLGRIND_DIR"
SIDES = ("handshake GET", "ingest POST")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, help="per side and round (default 3000; 300 with --instructions)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--instructions", action="store_true", help="count instructions under callgrind instead of timing CPU"
    )
    args = parser.parse_args()
    args.requests = args.requests or (300 if args.instructions else 3000)
    if args.instructions and CALLGRIND_DIR not in os.environ:
        instructions_report(requests=args.requests)
        return

    database_url = scratch_database_create(DATABASE_NAME)
    redis_port = free_port()
    # Before anything loads the settings, which read them once.
    os.environ.update(
        DATABASE_URL=database_url,
        REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
        DJANGO_SETTINGS_MODULE="tests.settings",
    )

    work_dir = Path(tempfile.mkdtemp(prefix="bench-webhook-cpu-"))
    redis_server = PrivateRedis(data_dir=work_dir, port=redis_port)
    try:
        if args.instructions:
            measure(requests=args.requests, rounds=1, log=work_dir / "webhook.log", meter=_instructions_count)
            return
        cpu = measure(requests=args.requests, rounds=args.rounds, log=work_dir / "webhook.log")
    finally:
        redis_server.kill()
        shutil.rmtree(work_dir)
        scratch_database_drop(DATABASE_NAME)
    print(f"{args.rounds} rounds of {args.requests} requests per side, in one process")
    print(f"{'':<16}{'CPU us/request (median; range)':>34}")
    for name, values in cpu.items():
        print(f"{name:<16}{statistics.median(values):>12.1f}  ({min(values):.1f}-{max(values):.1f})")


def instructions_report(*, requests: int) -> None:
    """Rerun this script under callgrind, instrumenting only the measured requests."""
    if not shutil.which("valgrind"):
        sys.exit("valgrind is not installed: apt-get install -y valgrind")
    with tempfile.TemporaryDirectory(prefix="bench-webhook-instructions-") as dump_dir:
        command = [
            "valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={dump_dir}/callgrind.%p",
            sys.executable, __file__, "--instructions", "--requests", str(requests),
        ]
        environment = {**os.environ, CALLGRIND_DIR: dump_dir}
        run = subprocess.run(command, env=environment, capture_output=True, text=True, check=False)
        if run.returncode != 0:
            sys.exit(f"the run under callgrind failed:\n{run.stdout}{run.stderr[-2000:]}")
        totals = {}
        for dump in Path(dump_dir).glob("callgrind.*.*"):
            text = dump.read_text(errors="replace")
            side = re.search(r"^desc: Trigger: dump (\S+)", text, re.MULTILINE)
            if side:
                totals[side.group(1)] = int(re.search(r"^totals: (\d+)", text, re.MULTILINE).group(1))
    print(f"{requests} requests per side, in one process under callgrind")
    print(f"{'':<16}{'instructions/request':>24}")
    for name in SIDES:
        print(f"{name:<16}{totals[_slug(name)] / requests:>24,.0f}")


def measure(
    *, requests: int, rounds: int, log: Path, meter: Callable[..., float | None] | None = None
) -> dict[str, list[float]]:
    import logging

    from django.conf import settings
    from django.core.management import call_command
    from django.core.wsgi import get_wsgi_application

    application = get_wsgi_application()  # sets Django up, logging included
    # The INFO line each message logs goes to a file, as in production, not to this terminal.
    logging.getLogger().handlers[0].setStream(log.open("w"))
    call_command("migrate", verbosity=0)
    handshake = _environ(
        method="GET",
        query=f"hub.mode=subscribe&hub.verify_token={settings.FACEBOOK_VERIFY_TOKEN}&hub.challenge=1158",
    )
    # Each sender's first message, then at most the rest of the window, over every round.
    senders = -(-(requests * (rounds + 1)) // (MESSAGES_PER_SENDER - 1))
    messages = _messages(app_secret=settings.FACEBOOK_APP_SECRET, senders=senders)
    for _ in range(senders):  # first contacts: each creates its conversation, not measured
        _call(application, next(messages))
    sides = tuple(zip(SIDES, (lambda: dict(handshake), lambda: next(messages))))
    cpu: dict[str, list[float]] = {name: [] for name in SIDES}
    for round_number in range(rounds + 1):  # round 0 warms up: imports, prepared statements
        for name, next_environ in sides:
            environs = [next_environ() for _ in range(requests)]
            if round_number:
                cpu[name].append((meter or _cpu_per_request)(application, environs, side=name))
            else:
                _requests_make(application, environs)
    _check_every_message_took_the_full_path()
    return cpu


def _check_every_message_took_the_full_path() -> None:
    from django_rq import get_queue

    from conversations.models import Message

    stored = Message.objects.filter(status=Message.Status.RECEIVED).count()
    if Message.objects.count() != stored or get_queue("default").count != stored:
        sys.exit("some messages were not stored as received with a reply job: the measurement is off")


def _cpu_per_request(application: Callable, environs: list[dict], *, side: str) -> float:
    start = time.process_time()
    _requests_make(application, environs)
    return (time.process_time() - start) / len(environs) * 1e6


def _instructions_count(application: Callable, environs: list[dict], *, side: str) -> None:
    """Callgrind counts only between "on" and "off"; the dump, named after the side, holds the total."""
    pid = str(os.getpid())
    for switch in (["--zero"], ["--instr=on"]):
        subprocess.run(["callgrind_control", *switch, pid], check=True, capture_output=True)
    _requests_make(application, environs)
    for switch in (["--instr=off"], [f"--dump={_slug(side)}"]):
        subprocess.run(["callgrind_control", *switch, pid], check=True, capture_output=True)


def _slug(side: str) -> str:
    return side.split()[0]


def _requests_make(application: Callable, environs: list[dict]) -> None:
    for environ in environs:
        _call(application, environ)


def _messages(*, app_secret: str, senders: int):
    """Signed single-message deliveries, senders interleaved, as WSGI environs."""
    from tests.messenger.webhook_client import signature, text_message

    n = 0
    while True:
        psid = str(7 * 10**15 + n % senders)
        message = text_message(mid=f"m_cpu_{n}", text=f"Hello, this is message {n}", psid=psid)
        body = json.dumps(message, separators=(",", ":")).encode()
        yield _environ(method="POST", body=body, HTTP_X_HUB_SIGNATURE_256=signature(body, app_secret))
        n += 1


def _environ(*, method: str, query: str = "", body: bytes = b"", **headers: str) -> dict:
    return {
        "REQUEST_METHOD": method,
        "PATH_INFO": "/api/webhooks/messenger",
        "QUERY_STRING": query,
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "8000",
        "HTTP_HOST": "localhost:8000",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
        **headers,
    }


def _call(application: Callable, environ: dict) -> None:
    statuses = []
    response = application(environ, lambda status, headers: statuses.append(status))
    b"".join(response)
    response.close()
    if not statuses[0].startswith("200"):
        sys.exit(f"{environ['REQUEST_METHOD']} answered {statuses[0]}")


if __name__ == "__main__":
    main()
