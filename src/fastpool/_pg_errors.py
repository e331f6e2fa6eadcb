"""The one place where psycopg (PostgreSQL) exceptions become ``AgentError``s.

As for SQLite (``_sqlite_errors``), the kind stays ``INVALID_STATE_TRANSITION``, the message
names the backend, and the retry class says what the caller can do about the cause: a lost
or refused connection, a lock wait past ``busy_timeout``, a serialization failure, a
server short of resources → ``RETRYABLE``; authentication, a missing database, missing
privileges, a read-only session → ``HOST_CONFIGURATION_NEEDED``; corrupt data →
``REPAIR_NEEDED``. psycopg is imported by the caller; nothing here needs it.
"""

from __future__ import annotations

from .enums import AgentErrorKind, RetryClassification
from .errors import AgentError

#: How the PostgreSQL store names itself in its errors.
NAME = "postgres agent pool store"
PREFIX = f"{NAME} failure: "

_RETRYABLE = RetryClassification.RETRYABLE
_CONFIGURATION = RetryClassification.HOST_CONFIGURATION_NEEDED

# SQLSTATE classes (first two characters) and codes, most specific first.
_RETRY_BY_STATE: dict[str, RetryClassification] = {
    "08": _RETRYABLE,  # connection exception
    "40": _RETRYABLE,  # transaction rollback: serialization failure, deadlock
    "53": _RETRYABLE,  # insufficient resources: disk full, out of memory, too many connections
    "55P03": _RETRYABLE,  # lock not available: lock_timeout (busy_timeout) passed
    "57014": _RETRYABLE,  # query canceled (statement_timeout)
    "57P": _RETRYABLE,  # operator intervention: terminated backend, shutdown, starting up
    "23505": _RETRYABLE,  # a writer outside fastpool took the sequence first: catch up and retry
    "28": _CONFIGURATION,  # invalid authorization
    "3D": _CONFIGURATION,  # invalid catalog name (no such database)
    "42501": _CONFIGURATION,  # insufficient privilege
    "25006": _CONFIGURATION,  # read-only SQL transaction
    "XX001": RetryClassification.REPAIR_NEEDED,  # data corrupted
    "XX002": RetryClassification.REPAIR_NEEDED,  # index corrupted
}
# libpq reports a refused login without an SQLSTATE; these server answers are transient.
_TRANSIENT_LOGIN = ("starting up", "shutting down", "in recovery", "too many clients", "not yet accepting")


def retry_class(error: BaseException, *, login: bool = False) -> RetryClassification:
    """What a caller should do about a PostgreSQL failure (``login``: connecting failed)."""
    state = getattr(error, "sqlstate", None)
    if isinstance(state, str):
        for key in (state, state[:3], state[:2]):
            if key in _RETRY_BY_STATE:
                return _RETRY_BY_STATE[key]
        return RetryClassification.REPAIR_NEEDED
    text = str(error)
    if login and "FATAL:" in text and not any(phrase in text for phrase in _TRANSIENT_LOGIN):
        return _CONFIGURATION  # the server refused the login: role, database, password, pg_hba
    return _RETRYABLE  # refused, reset, timed out, closed: the server may answer the next call


def translate(error: BaseException, *, login: bool = False) -> AgentError:
    """The ``AgentError`` for a psycopg error; raise it ``from error``."""
    text = " ".join(str(error).split())  # libpq's messages run over several indented lines
    return AgentError(AgentErrorKind.INVALID_STATE_TRANSITION, retry_class(error, login=login), f"{PREFIX}{text}")
