"""How the surfaces read a stored JSON value: ``fastpool.wire``, failures worded as Rust's.

A stored value that does not decode is Rust's ``serde_error``: a ``ContractViolation``
``sqlite store JSON error: <serde_json message>`` (``_json`` gives serde_json's text).
"""

from __future__ import annotations

from typing import Any, TypeVar

from .. import wire
from ..errors import AgentError, InvalidInput
from ._json import data_error, syntax_error

__all__ = ["decode_stored", "decode_all"]

M = TypeVar("M")


def serde_error(message: str) -> AgentError:
    """Rust's ``serde_error``."""
    return AgentError.contract_violation(f"sqlite store JSON error: {message}")


def decode_stored(cls: type[M], text: Any) -> M:
    """``cls`` from a stored JSON text, or Rust's error for it."""
    try:
        return wire.decode(cls, text)
    except InvalidInput as error:
        if not isinstance(text, str):
            raise serde_error(f"invalid type: expected a JSON string, got {type(text).__name__}") from None
        message = syntax_error(text) or data_error(cls, text, error.message)  # type: ignore[arg-type]
        raise serde_error(message) from None


def decode_all(cls: type[M], rows: list[tuple[Any, ...]]) -> list[M]:
    """Each row's first column as ``cls``, in order; the first that fails fails the call."""
    return [decode_stored(cls, row[0]) for row in rows]
