"""The RQ queue every job goes to, and its Redis connection: one of each per process.

django-rq builds a new Redis client on every call, and a new queue asks the server for its
version before its first enqueue: on the webhook's and the reply job's paths that is work per
message for nothing. Tests that point RQ_QUEUES at another Redis get new ones.
"""

import functools

import django_rq
from django.core.signals import setting_changed
from django.dispatch import receiver
from redis import Redis
from rq import Queue

QUEUE_NAME = "default"


@functools.cache
def queue_default() -> Queue:
    return django_rq.get_queue(QUEUE_NAME)


def redis_connection() -> Redis:
    return queue_default().connection


@receiver(setting_changed)
def _queue_forget(*, setting: str, **kwargs: object) -> None:
    if setting == "RQ_QUEUES":
        queue_default.cache_clear()
