"""The staff's admin: the inbox (conversations, contacts, messages, the system prompt) and the knowledge base."""
from conversations.admin import inbox, knowledge  # noqa: F401 -- registers their ModelAdmins
