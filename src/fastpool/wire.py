"""The wire codec: model objects to and from the exact JSON that Rust's serde_json writes.

``encode`` is byte-identical to ``serde_json::to_string`` (key order, omissions, tags,
escaping: orjson escapes exactly as serde_json does and writes non-ASCII raw), and
``decode`` accepts what Rust accepts and rejects the rest with ``InvalidInput``.

>>> from fastpool.model import AgentPoolStoreCursor
>>> encode(AgentPoolStoreCursor(sequence=7))
'{"sequence":7}'
>>> decode(AgentPoolStoreCursor, '{"sequence":7,"extra":true}')
AgentPoolStoreCursor(sequence=7)
"""

from __future__ import annotations

import typing
from typing import Any, TypeVar

import orjson

from ._compat import engine
from ._schema import UNION, Model, Spec
from .errors import VARIANTS, AgentError, InvalidInput
from .model import CausalIds, ErrorContext

__all__ = ["encode", "decode", "dumps", "loads"]

T = TypeVar("T")


def dumps(obj: Any) -> bytes:
    """``encode`` as UTF-8 bytes."""
    return encode(obj).encode("utf-8")


def encode(obj: Any) -> str:
    """The compact serde_json text of a model object or an ``AgentError``."""
    if isinstance(obj, AgentError):
        return orjson.dumps(_error_plain(obj)).decode("utf-8")
    try:
        return engine.dumps(obj)  # written straight from the schema (no dicts) by the compiled engine
    except AttributeError:
        raise InvalidInput(f"cannot encode {type(obj).__name__}: not a fastpool model object") from None


def loads(text: str | bytes) -> Any:
    """Parse JSON text; ``InvalidInput`` if it is not JSON."""
    try:
        return orjson.loads(text)
    except (orjson.JSONDecodeError, TypeError) as error:
        raise InvalidInput(f"malformed JSON: {error}") from None


def decode(cls: type[T], text: str | bytes) -> T:
    """Read ``cls`` from JSON text, exactly as Rust's serde would (``InvalidInput`` otherwise).

    ``cls`` may be a model class, ``AgentError`` or ``AgentPoolStoreRecordPayload``.
    """
    value = loads(text)
    if cls is AgentError:
        return _error_from_plain(value)  # type: ignore[return-value]
    if typing.get_origin(cls) is typing.Union:
        variants = {member.TYPE: member for member in typing.get_args(cls)}
        return engine.from_plain(Spec(UNION, variants), value, "value")  # type: ignore[no-any-return]
    if not (isinstance(cls, type) and issubclass(cls, Model)):
        raise InvalidInput(f"cannot decode {getattr(cls, '__name__', cls)!r}: not a fastpool model class")
    return engine.from_plain(cls, value, cls.__name__)  # type: ignore[no-any-return]


def _error_plain(error: AgentError) -> dict[str, Any]:
    if error.variant == "Classified":
        body: dict[str, Any] = {
            "kind": error.kind.value,
            "retry": error.retry.value,
            "context": engine.to_plain(error.context),
            "causal_ids": engine.to_plain(error.causal_ids),
        }
    elif error.variant == "MissingRequiredField":
        body = {"field": error.message}
    else:
        body = {"message": error.message}
    return {error.variant: body}


def _error_from_plain(value: Any) -> AgentError:
    if type(value) is not dict or len(value) != 1:
        raise InvalidInput("AgentError: expected an object with exactly one variant key")
    ((variant, body),) = value.items()
    if variant not in VARIANTS:
        raise InvalidInput(f"AgentError: unknown variant {variant!r}")
    if type(body) is not dict:
        raise InvalidInput(f"AgentError.{variant}: expected an object")
    if variant == "Classified":
        for key in ("kind", "retry", "context", "causal_ids"):
            if key not in body:
                raise InvalidInput(f"AgentError.Classified.{key}: missing field")
        context = engine.from_plain(ErrorContext, body["context"], "AgentError.Classified.context")
        causal = engine.from_plain(CausalIds, body["causal_ids"], "AgentError.Classified.causal_ids")
        try:
            return AgentError(body["kind"], body["retry"], context.message, context=context, causal_ids=causal)
        except ValueError as error:
            raise InvalidInput(f"AgentError.Classified: {error}") from None
    key = "field" if variant == "MissingRequiredField" else "message"
    text = body.get(key)
    if type(text) is not str:
        raise InvalidInput(f"AgentError.{variant}.{key}: expected a string")
    if variant == "MissingRequiredField":
        return AgentError.missing_required_field(text)
    if variant == "ContractViolation":
        return AgentError.contract_violation(text)
    return AgentError.host_configuration_needed(text)
