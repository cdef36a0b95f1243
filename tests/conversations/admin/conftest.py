# The inbox's fixtures (a moderator signed in, conversations made to measure), for every admin test.
from tests.conversations.admin.test_inbox import make_conversation, moderator, moderator_client  # noqa: F401
