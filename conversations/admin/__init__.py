"""The staff's admin: the inbox (conversations, contacts, messages, the system prompt), comments,
the connected Pages, the knowledge base, and the job queue's pages."""

from conversations.admin import (
    comments,  # noqa: F401 -- registers its ModelAdmin
    inbox,  # noqa: F401 -- registers its ModelAdmins
    jobs,  # noqa: F401 -- puts django-rq's pages behind their permission
    pages,  # noqa: F401 -- registers its ModelAdmin
)
from conversations.knowledge import admin as knowledge_admin  # noqa: F401 -- registers its ModelAdmins
