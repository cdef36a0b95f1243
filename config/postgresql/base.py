"""Django's PostgreSQL backend with a health check that needs no round trip to the server.

CONN_HEALTH_CHECKS has Django check a reused connection before the first query of each
request, so a connection the server closed (a restart, a failover, an idle timeout) is
replaced instead of failing that request. Django checks with `SELECT 1`: on the webhook
that round trip cost about 6% of the throughput (docs/bench-ingest.md). A server that
closes a connection first writes to it (PostgreSQL sends "terminating connection ...") or
shuts it, either of which makes the idle socket readable; one poll() sees that at no cost.
"""
import select

from django.db.backends.postgresql import base
from psycopg.pq import TransactionStatus

# Between requests a healthy connection is idle, or inside a transaction Django opened.
_USABLE_STATES = frozenset({TransactionStatus.IDLE, TransactionStatus.INTRANS})


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self) -> bool:
        connection = self.connection
        if connection is None or connection.closed:
            return False
        if connection.info.transaction_status not in _USABLE_STATES:
            return False
        # Nothing is owed to an idle client: anything to read (or a hang-up) means it is going.
        poller = select.poll()
        poller.register(connection.fileno(), select.POLLIN | select.POLLPRI)
        return not poller.poll(0)
