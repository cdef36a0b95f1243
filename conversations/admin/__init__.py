"""The staff's admin: the inbox (conversations, contacts, messages, the system prompt) and the knowledge base."""

from conversations.admin import inbox  # noqa: F401 -- registers its ModelAdmins
from conversations.knowledge import admin as knowledge_admin  # noqa: F401 -- likewise
