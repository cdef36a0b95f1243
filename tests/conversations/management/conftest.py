import pytest
from django.db import connections


@pytest.fixture(autouse=True)
def keep_test_connection(monkeypatch):
    # A command run from the command line closes the database connections when it ends;
    # here that would be the test's own connection, inside its transaction.
    monkeypatch.setattr(connections, "close_all", lambda: None)
