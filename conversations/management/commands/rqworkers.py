"""`manage.py rqworkers`: the `worker` process, a pool of RQ workers that also schedules.

The pool is conversations.workers; this command only checks the secrets and starts it.
"""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django_rq.jobs import get_job_class
from django_rq.queues import get_queues
from django_rq.utils import reset_db_connections
from rq.logutils import setup_loghandlers

from config.checks import production_secrets_require
from conversations.llm import get_groq_client
from conversations.workers import InProcessWorker, SchedulingWorkerPool


class Command(BaseCommand):
    help = "Run a pool of RQ workers for the given queues, with rq's scheduler and the periodic jobs."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("queues", nargs="*", default=["default"], help="queues to work on")
        parser.add_argument(
            "--num-workers",
            type=int,
            default=settings.RQ_WORKERS,
            help="worker processes, each running RQ_THREADS jobs at once (default: RQ_WORKERS)",
        )

    def handle(self, *args, queues: list[str], num_workers: int, verbosity: int, **options) -> None:
        production_secrets_require()
        logging_level = "DEBUG" if verbosity >= 2 else "WARNING" if verbosity == 0 else "INFO"
        setup_loghandlers(logging_level)
        job_class = get_job_class()
        rq_queues = get_queues(*queues, job_class=job_class)
        pool = SchedulingWorkerPool(
            queues=rq_queues,
            connection=rq_queues[0].connection,
            num_workers=num_workers,
            worker_class=InProcessWorker,
            job_class=job_class,
        )
        # Built here, so the workers forked from this process inherit the client and the SDK
        # modules it imports lazily instead of loading them on their first job.
        get_groq_client().chat.completions  # noqa: B018
        reset_db_connections()
        pool.start(logging_level=logging_level)
