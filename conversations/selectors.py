"""Reads. Writes live in services.py."""
from django.conf import settings
from django.db import DatabaseError, connection
from django_rq import get_connection
from redis.exceptions import RedisError

from conversations.models import SystemPrompt


def health_failures() -> dict[str, str]:
    """Which of our own dependencies are unreachable, by component name."""
    failures = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as error:
        failures["database"] = type(error).__name__
    try:
        get_connection("default").ping()
    except RedisError as error:
        failures["redis"] = type(error).__name__
    return failures


def system_prompt_current() -> str:
    """The newest staff-edited system prompt, or the one from settings."""
    prompt = SystemPrompt.objects.values_list("text", flat=True).first()
    return prompt or settings.LLM_SYSTEM_PROMPT
