"""The one place where APSW (SQLite) exceptions become ``AgentError``s.

The kind stays ``INVALID_STATE_TRANSITION`` and the message keeps the Rust prefix;
the retry class says what the caller can do about the cause.
"""

from __future__ import annotations

import apsw

from .enums import AgentErrorKind, RetryClassification
from .errors import AgentError, InvalidInput

#: How the SQLite store names itself in its errors.
NAME = "sqlite agent pool store"
PREFIX = f"{NAME} failure: "

# Most specific first: APSW's exception classes do not inherit from one another.
_RETRY_BY_CAUSE: tuple[tuple[type[BaseException], RetryClassification], ...] = (
    (apsw.BusyError, RetryClassification.RETRYABLE),
    (apsw.LockedError, RetryClassification.RETRYABLE),
    (apsw.FullError, RetryClassification.RETRYABLE),
    (apsw.IOError, RetryClassification.RETRYABLE),
    (apsw.InterruptError, RetryClassification.RETRYABLE),
    (apsw.CorruptError, RetryClassification.REPAIR_NEEDED),
    (apsw.NotADBError, RetryClassification.REPAIR_NEEDED),
    (apsw.ReadOnlyError, RetryClassification.HOST_CONFIGURATION_NEEDED),
    (apsw.CantOpenError, RetryClassification.HOST_CONFIGURATION_NEEDED),
    (apsw.PermissionsError, RetryClassification.HOST_CONFIGURATION_NEEDED),
    (apsw.AuthError, RetryClassification.HOST_CONFIGURATION_NEEDED),
)


def retry_class(error: BaseException) -> RetryClassification:
    """What a caller should do about an SQLite failure."""
    for cause, retry in _RETRY_BY_CAUSE:
        if isinstance(error, cause):
            return retry
    if isinstance(error, OSError):  # creating the parent directory, opening the -shm file
        return RetryClassification.HOST_CONFIGURATION_NEEDED
    return RetryClassification.REPAIR_NEEDED


def translate(error: BaseException) -> AgentError:
    """The ``AgentError`` for an APSW (or OS) error; raise it ``from error``."""
    if isinstance(error, apsw.TooBigError):  # a value over SQLITE_LIMIT_LENGTH: bad input, not a bad file
        return InvalidInput(f"{PREFIX}{error}")
    return AgentError(AgentErrorKind.INVALID_STATE_TRANSITION, retry_class(error), f"{PREFIX}{error}")
