"""The RQ worker pool the `worker` process runs (`manage.py rqworkers`).

It is rq's WorkerPool, as django-rq's `rqworker-pool` runs it: RQ_WORKERS processes, each
running RQ_THREADS rq workers in threads, so a process holds that many jobs at once while they
wait on Groq and Meta (docs/decisions.md). It has two things added to the
supervisor's check that runs every second: it moves due scheduled jobs (retries, a busy
conversation's second look) into the queue, as rq's scheduler does, whenever it holds rq's
scheduler lock; and it queues the periodic jobs (the recovery sweeps, the hourly profile
sweep, the Page token check, the dashboard's daily counts, the tombstones' expiry, the media
files' expiry) as rq's cron does.
The supervisor outlives every worker, so neither waits for a dead scheduler to be replaced, and
both resume on their own once Redis is back after an outage or a restart.
"""

import logging
import threading
import time
from multiprocessing.connection import wait

from django.conf import settings
from django.db import close_old_connections
from django_rq.cron import DjangoCronScheduler
from redis.exceptions import RedisError
from rq.job import Job
from rq.queue import Queue
from rq.scheduler import RQScheduler
from rq.timeouts import TimerDeathPenalty
from rq.worker import SimpleWorker
from rq.worker_pool import WorkerPool

from conversations.insights.jobs import dashboard_settled_days_count_run
from conversations.jobs import (
    comments_sweep_run,
    contacts_profile_sweep_run,
    media_files_expire_run,
    page_token_check_run,
    replies_sweep_run,
    tombstones_purge_run,
)

logger = logging.getLogger(__name__)

PROFILE_SWEEP_SECONDS = 3600
DASHBOARD_COUNT_SECONDS = 3600
TOMBSTONES_PURGE_SECONDS = 3600
MEDIA_EXPIRE_SECONDS = 3600


class InProcessWorker(SimpleWorker):
    """Runs each job in the worker process itself instead of a fork per job, with RQ_THREADS - 1
    more workers in threads beside it (ThreadWorker).

    A fork starts cold: every job would pay again for the SDKs' lazy imports and for fresh
    database and HTTP connections (the pool's throughput halved). In-process they stay warm;
    database connections are handled as Django handles them around a request.
    """

    # rq's default timeout is SIGALRM, which only the main thread receives.
    death_penalty_class = TimerDeathPenalty

    def __init__(self, *args, **kwargs) -> None:
        # Log lines name jobs by id: a job's description shows its arguments (an alert's reason,
        # which may name the person). rq's constructor sets it from this argument, which
        # defaults to True, so a class attribute would not do.
        kwargs.setdefault("log_job_description", False)
        super().__init__(*args, **kwargs)

    def work(self, burst: bool = False, **kwargs) -> bool:
        if burst:  # a test's "run what is queued, then return"
            return super().work(burst=True, **kwargs)
        siblings = [
            ThreadWorker(
                self.queues,
                name=f"{self.name}.{number}",
                connection=self.connection,
                serializer=self.serializer,
                job_class=self.job_class,
                queue_class=self.queue_class,
            )
            for number in range(1, settings.RQ_THREADS)
        ]
        threads = [
            threading.Thread(
                target=sibling.work, kwargs={"logging_level": kwargs.get("logging_level")}, daemon=True
            )
            for sibling in siblings
        ]
        for thread in threads:
            thread.start()
        try:
            # Scheduling is the supervisor's (SchedulingWorkerPool): rq's own would fork a
            # scheduler process from this one, whose threads may hold locks the child then waits
            # on for ever, and due retries would stay where they are.
            return super().work(**{**kwargs, "with_scheduler": False})
        finally:
            # A warm stop: each finishes the job it holds (the process's signal reached this one).
            for sibling in siblings:
                sibling.stop_soon()
            for thread in threads:
                thread.join()

    def execute_job(self, job: Job, queue: Queue) -> None:
        close_old_connections()
        try:
            super().execute_job(job, queue)
        finally:
            close_old_connections()


class ThreadWorker(InProcessWorker):
    """One more worker in a thread of a pool process. Signals reach the process's own worker,
    which stops this one (`stop_soon`); it looks for that between jobs and at least every second."""

    DEQUEUE_STEP_SECONDS = 1

    def work(self, burst: bool = False, **kwargs) -> bool:
        return SimpleWorker.work(self, burst=burst, **kwargs)

    def stop_soon(self) -> None:
        self._stop_requested = True

    def _install_signal_handlers(self) -> None:
        pass  # only the main thread may; the process's own worker has them

    def subscribe(self) -> None:
        pass  # rq's commands (stop, kill) reach the process's own worker, one channel per process

    def dequeue_job_and_maintain_ttl(self, timeout: int | None, max_idle_time: int | None = None):
        while not self._stop_requested:
            # Idle for a step, rq returns None: time to look for a stop again.
            result = super().dequeue_job_and_maintain_ttl(
                self.DEQUEUE_STEP_SECONDS, self.DEQUEUE_STEP_SECONDS
            )
            if result is not None:
                return result
        return None


class SchedulingWorkerPool(WorkerPool):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._scheduler = RQScheduler(self.queues, connection=self.connection)
        self._cron = DjangoCronScheduler(connection=self.connection)
        for job, interval in (
            (replies_sweep_run, settings.REPLY_SWEEP_INTERVAL_SECONDS),
            (comments_sweep_run, settings.REPLY_SWEEP_INTERVAL_SECONDS),
            (contacts_profile_sweep_run, PROFILE_SWEEP_SECONDS),
            (dashboard_settled_days_count_run, DASHBOARD_COUNT_SECONDS),
            (page_token_check_run, round(settings.PAGE_TOKEN_CHECK_HOURS * 3600)),
            (tombstones_purge_run, TOMBSTONES_PURGE_SECONDS),
            (media_files_expire_run, MEDIA_EXPIRE_SECONDS),
        ):
            self._cron.register(job, self.queues[0].name, interval=interval, result_ttl=0)

    def all_workers_have_stopped(self) -> bool:
        # rq looks at each worker for 0.1 s in turn and sleeps a second between rounds; waiting
        # on all of them at once, stopping takes as long as the slowest worker, not rounds of that.
        deadline = time.monotonic() + 1
        alive = [data.process.sentinel for data in self.worker_dict.values() if data.process.is_alive()]
        while alive and (remaining := deadline - time.monotonic()) > 0:
            for ended in wait(alive, timeout=remaining):
                alive.remove(ended)
        return super().all_workers_have_stopped()

    def check_workers(self, respawn: bool = True) -> None:
        super().check_workers(respawn=respawn)
        try:
            if self._scheduler.acquire_locks():
                self._scheduler.enqueue_scheduled_jobs()
            self._cron.enqueue_jobs()
        except RedisError:
            logger.debug("Scheduling skipped: Redis unavailable", exc_info=True)
