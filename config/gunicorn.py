"""gunicorn's settings for the `web` process, its knobs read from the service's settings.

So PORT, WEB_CONCURRENCY and the rest follow the service's one precedence rule (the
environment wins over `.env`, empty means unset) on every platform, and the Procfile's
command stays the same everywhere.
"""

import logging
import os

from django.conf import settings
from gunicorn.workers.gthread import ThreadWorker

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


class QuickExitThreadWorker(ThreadWorker):
    """gunicorn's gthread worker, which leaves at once when it has stopped serving.

    Python's teardown would free every object of the app the worker shares with the master
    (--preload), writing to each of those pages and so copying them: CPU-seconds per worker
    that only delay a restart or Ctrl-C. Errors still end the worker the usual way.
    """

    def run(self) -> None:
        super().run()
        self.log.info("Worker exiting (pid: %s)", self.pid)
        logging.shutdown()
        os._exit(0)


bind = [f"{settings.BIND_HOST}:{settings.PORT}"]
workers = settings.WEB_CONCURRENCY
# Threads, so a client that sends its request slowly holds one thread, not a whole worker
# (a sync worker would stop answering Meta's webhooks for as long as it trickles).
worker_class = "config.gunicorn.QuickExitThreadWorker"
threads = settings.WEB_THREADS
timeout = 30
# The app is loaded once in the master, so a process without its secrets exits at once
# (config.wsgi) and workers start from a warm copy.
preload_app = True
control_socket_disable = True
# X-Forwarded-Proto (wsgi.url_scheme) is believed from these proxies only.
forwarded_allow_ips = ",".join(settings.FORWARDED_ALLOW_IPS)

# Each worker updates a heartbeat file on every request. On a disk-backed /tmp that is a
# journaled inode write, which can wait behind the database's writes to the same disk
# (gunicorn's docs suggest a RAM filesystem); /dev/shm is one on Linux and in Docker.
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"

# The access log names the path without its query string (and without the referrer, which
# carries another page's): Meta's handshake puts the verify token there, and the admin's
# search boxes put what staff searched for.
accesslog = "-"
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s "%(a)s"'

# gunicorn's own lines (its error log, the access log) go to the root logger, which Django's
# LOGGING (config.settings) formats: one format for the whole process, text or LOG_FORMAT=json.
logconfig_dict = {
    "loggers": {
        name: {"handlers": [], "propagate": True, "qualname": name}
        for name in ("gunicorn.error", "gunicorn.access")
    }
}
