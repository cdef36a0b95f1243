"""gunicorn settings the Procfile's command line cannot say on every system."""

import os

# Each worker updates a heartbeat file on every request. On a disk-backed /tmp that is a
# journaled inode write, which can wait behind the database's writes to the same disk
# (gunicorn's docs suggest a RAM filesystem); /dev/shm is one on Linux and in Docker.
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"

# gunicorn's own lines (its error log, the access log) go to the root logger, which Django's
# LOGGING (config.settings) formats: one format for the whole process, text or LOG_FORMAT=json.
logconfig_dict = {
    "loggers": {
        name: {"handlers": [], "propagate": True, "qualname": name}
        for name in ("gunicorn.error", "gunicorn.access")
    }
}
