import pytest
from django_rq import get_connection

from tests.e2e.stack import stack_running


@pytest.fixture(scope="module")
def stack(django_db_setup, django_db_blocker, tmp_path_factory):
    """Web and worker from the Procfile on the test database, shared by a module's tests.

    They start on an empty Redis, as a new deployment would: queues, locks and alerts' memory
    of an earlier run or module must not leak in.
    """
    get_connection("default").flushdb()
    with stack_running(
        django_db_blocker=django_db_blocker, log_dir=tmp_path_factory.mktemp("processes")
    ) as started:
        yield started


@pytest.fixture
def service(stack, transactional_db):
    stack.reset()
    return stack
