"""Typed identifiers and the Rust validation rule.

Ids are plain ``str`` at the API; the ``NewType`` aliases exist for annotations (type
checkers see them as ``str``).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, NewType, TypeAlias

from .errors import InvalidInput

if TYPE_CHECKING:
    # Every API takes a plain str for an id, so type checkers see exactly that.
    AgentPoolId: TypeAlias = str
    RunId: TypeAlias = str
    AgentId: TypeAlias = str
    TopicId: TypeAlias = str
    MessageId: TypeAlias = str
    IdempotencyKey: TypeAlias = str
    WakeConditionId: TypeAlias = str
    ContentRef: TypeAlias = str
    JournalCursor: TypeAlias = str
    PolicyId: TypeAlias = str
    CorrelationKey: TypeAlias = str
    CorrelationValue: TypeAlias = str
    DestinationId: TypeAlias = str
    EntityId: TypeAlias = str
    SourceId: TypeAlias = str
    SessionId: TypeAlias = str
    TurnId: TypeAlias = str
else:
    # At run time each is a NewType: the model reads it to know which fields are validated ids.
    AgentPoolId = NewType("AgentPoolId", str)
    RunId = NewType("RunId", str)
    AgentId = NewType("AgentId", str)
    TopicId = NewType("TopicId", str)
    MessageId = NewType("MessageId", str)
    IdempotencyKey = NewType("IdempotencyKey", str)
    WakeConditionId = NewType("WakeConditionId", str)
    ContentRef = NewType("ContentRef", str)
    JournalCursor = NewType("JournalCursor", str)
    PolicyId = NewType("PolicyId", str)
    CorrelationKey = NewType("CorrelationKey", str)
    CorrelationValue = NewType("CorrelationValue", str)
    DestinationId = NewType("DestinationId", str)
    EntityId = NewType("EntityId", str)
    SourceId = NewType("SourceId", str)
    SessionId = NewType("SessionId", str)
    TurnId = NewType("TurnId", str)

#: Every validated id type; the model's schema treats these as "validated id".
ID_TYPES = frozenset(
    {
        AgentPoolId,
        RunId,
        AgentId,
        TopicId,
        MessageId,
        IdempotencyKey,
        WakeConditionId,
        ContentRef,
        JournalCursor,
        PolicyId,
        CorrelationKey,
        CorrelationValue,
        DestinationId,
        EntityId,
        SourceId,
        SessionId,
        TurnId,
    }
)

MAX_ID_BYTES = 512
# Unicode category Cc is exactly C0, DEL and C1.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
#: A Python str may hold lone surrogates; UTF-8 text (and a Rust String) cannot, so no
#: string containing one can be stored or encoded.
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def id_error(value: str) -> str | None:
    """Return the Rust ``IdValidationError`` text for ``value``, or ``None`` if it is valid."""
    if value.isascii() and value.isprintable() and 0 < len(value) <= MAX_ID_BYTES:
        return None  # the common case: printable ASCII has no Cc character
    if not value:
        return "identifier is empty"
    if len(value) > MAX_ID_BYTES // 4:
        # Only then can the UTF-8 length exceed the limit; encoding is the slow part.
        size = len(value.encode("utf-8", "surrogatepass"))
        if size > MAX_ID_BYTES:
            return f"identifier length {size} exceeds max {MAX_ID_BYTES}"
    found = _CONTROL.search(value)
    if found is not None:
        index = len(value[: found.start()].encode("utf-8", "surrogatepass"))
        return f"identifier contains control character at byte {index}"
    found = LONE_SURROGATE.search(value)
    if found is not None:
        index = len(value[: found.start()].encode("utf-8", "surrogatepass"))
        return f"identifier contains lone surrogate at byte {index} (not valid UTF-8)"
    return None


def validate_id(value: object) -> str:
    """Return ``value`` if it is a valid identifier, else raise ``InvalidInput``.

    >>> validate_id("run.a")
    'run.a'
    >>> validate_id("")
    Traceback (most recent call last):
    ...
    fastpool.errors.InvalidInput: invalid input: identifier is empty
    """
    if not isinstance(value, str):
        raise InvalidInput(f"identifier must be a str, not {type(value).__name__}")
    error = id_error(value)
    if error is not None:
        raise InvalidInput(error)
    return value
