"""`manage.py rqworkers`: django-rq's `rqworker-pool`, plus the recovery sweep on a timer.

The pool's supervisor wakes every second to respawn dead workers; here it also queues the
recovery sweep when it is due (conversations.services.replies.replies_sweep_schedule) and
restarts RQ's scheduler if it died. So the sweep needs no cron or extra process, and both
come back by themselves after a Redis restart (which loses scheduled jobs) or a SIGKILL.
"""

from django.core.management.base import BaseCommand, CommandParser
from django.db import close_old_connections
from django_rq.jobs import get_job_class
from django_rq.queues import get_queues
from django_rq.utils import reset_db_connections
from redis.exceptions import RedisError
from rq.job import Job
from rq.logutils import setup_loghandlers
from rq.queue import Queue
from rq.scheduler import RQScheduler
from rq.worker import SimpleWorker
from rq.worker_pool import WorkerPool

# Imported here, in the supervisor, so the workers it forks start with the job code, the
# groq SDK and requests already loaded (and share those pages).
from conversations import jobs  # noqa: F401
from conversations.llm import get_groq_client
from conversations.services.replies import replies_sweep_schedule


class InProcessWorker(SimpleWorker):
    """Runs each job in the worker process itself instead of a fork per job.

    A fork starts cold: every job would pay again for the SDKs' lazy imports, pydantic's
    validators, TLS contexts and fresh database and HTTP connections (measured: the pool's
    throughput halved). In-process, those stay warm across jobs. Connections are then
    handled as Django handles them around a request: dropped when broken or too old.
    """

    def execute_job(self, job: Job, queue: Queue) -> None:
        close_old_connections()
        try:
            super().execute_job(job, queue)
        finally:
            close_old_connections()


class SweepingWorkerPool(WorkerPool):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._scheduler = RQScheduler(self.queues, connection=self.connection)

    def check_workers(self, respawn: bool = True) -> None:
        super().check_workers(respawn=respawn)
        self._scheduler_revive()
        replies_sweep_schedule()

    def request_stop(self, signum=None, frame=None) -> None:
        super().request_stop(signum, frame)
        if self._scheduler_alive():
            self._scheduler._process.terminate()

    def _scheduler_revive(self) -> None:
        """Run RQ's scheduler (retries, delayed jobs) here when no one does.

        Workers start it only at birth and then every ten minutes; a scheduler that died with
        a Redis outage, or whose lock a SIGKILLed worker left behind (it expires after a
        minute), would leave retries waiting that long.
        """
        if self._scheduler_alive():
            return
        try:
            self._scheduler.acquire_locks(auto_start=True)
        except RedisError:
            pass  # the workers log the outage; try again next second

    def _scheduler_alive(self) -> bool:
        process = self._scheduler._process
        return process is not None and process.is_alive()


class Command(BaseCommand):
    help = "Run a pool of RQ workers (scheduler included) that also schedules the replies' recovery sweep."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("queues", nargs="*", default=["default"], help="queues to work on")
        parser.add_argument(
            "--num-workers", type=int, default=10, help="worker processes, each one job at a time"
        )

    def handle(self, *args, queues: list[str], num_workers: int, verbosity: int, **options) -> None:
        logging_level = "DEBUG" if verbosity >= 2 else "WARNING" if verbosity == 0 else "INFO"
        setup_loghandlers(logging_level)
        job_class = get_job_class()
        rq_queues = get_queues(*queues, job_class=job_class)
        pool = SweepingWorkerPool(
            queues=rq_queues,
            connection=rq_queues[0].connection,
            num_workers=num_workers,
            worker_class=InProcessWorker,
            job_class=job_class,
        )
        # The client and the SDK's lazily imported resources, built once here (no connection is
        # opened) and inherited by every worker, instead of on each worker's first job.
        get_groq_client().chat.completions  # noqa: B018
        reset_db_connections()
        pool.start(logging_level=logging_level)
