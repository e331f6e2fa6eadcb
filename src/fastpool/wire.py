"""The wire codec: model objects to and from the exact JSON that Rust's serde_json writes.

``encode`` is byte-identical to ``serde_json::to_string`` (key order, omissions, tags,
escaping: orjson escapes exactly as serde_json does and writes non-ASCII raw), and
``decode`` accepts what Rust accepts and rejects the rest with ``InvalidInput``;
``decode_payload`` reads a record payload whose variant the text names.

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
from ._schema import UNION, Model, Spec, union_spec
from .errors import VARIANTS, AgentError, InvalidInput
from .model import AgentPoolStoreRecordPayload, CausalIds, ErrorContext
from .store_model import ContentResolutionError

__all__ = ["encode", "decode", "decode_payload", "dumps", "loads"]

T = TypeVar("T")


def dumps(obj: Any) -> bytes:
    """``encode`` as UTF-8 bytes."""
    return encode(obj).encode("utf-8")


def encode(obj: Any) -> str:
    """The compact serde_json text of a model object or an ``AgentError`` (a
    ``ContentResolutionError``: its own struct, as Rust's)."""
    if isinstance(obj, ContentResolutionError):
        return orjson.dumps(obj.to_plain()).decode("utf-8")
    if isinstance(obj, AgentError):
        return orjson.dumps(_error_plain(obj)).decode("utf-8")
    try:
        return engine.dumps(obj)  # written straight from the schema (no dicts) by the compiled engine
    except AttributeError:
        raise InvalidInput(f"cannot encode {type(obj).__name__}: not a fastpool model object") from None


def loads(text: str | bytes) -> Any:
    """Parse JSON text (a repeated key keeps its last value); ``InvalidInput`` if it is not JSON."""
    try:
        return orjson.loads(text)
    except (orjson.JSONDecodeError, TypeError) as error:
        raise InvalidInput(f"malformed JSON: {error}") from None


def decode(cls: type[T], text: str | bytes) -> T:
    """Read ``cls`` from JSON text, exactly as Rust's serde would (``InvalidInput`` otherwise).

    ``cls`` may be a model class, ``AgentError`` or ``AgentPoolStoreRecordPayload``. A
    variant class of a tagged enum (``PoolCreated``, ``RunTarget``, …) requires its own
    ``"type"`` tag, since Rust reads such an object only through the enum. An object that
    repeats a field or a tag is rejected; a repeated unknown key is ignored, as serde does.

    >>> from fastpool.model import PoolCreated
    >>> decode(PoolCreated, '{"type":"pool_created"}')
    PoolCreated()
    >>> try:
    ...     decode(PoolCreated, '{"type":"member_joined"}')
    ... except InvalidInput as error:
    ...     print(error.message)
    PoolCreated.type: unknown variant 'member_joined', expected 'pool_created'
    """
    if cls is AgentError:
        return _error_from_plain(engine.parse_json(text, "AgentError"))  # type: ignore[return-value]
    if not (isinstance(cls, type) and issubclass(cls, Model)):
        if typing.get_origin(cls) is typing.Union:
            spec = union_spec(typing.get_args(cls))
            return engine.from_plain(spec, engine.parse_json(text, "value"), "value")  # type: ignore[no-any-return]
        raise InvalidInput(f"cannot decode {getattr(cls, '__name__', cls)!r}: not a fastpool model class")
    tag = getattr(cls, "TYPE", None)
    if tag is not None:
        value = engine.parse_json(text, cls.__name__)
        return engine.from_plain(Spec(UNION, {tag: cls}), value, cls.__name__)  # type: ignore[no-any-return]
    return engine.decode_text(cls, text, cls.__name__)  # type: ignore[no-any-return]


def decode_payload(text: str | bytes) -> AgentPoolStoreRecordPayload:
    """A record payload of whichever variant its ``"type"`` names (``InvalidInput`` otherwise):
    how the stores read ``agent_pool_records.payload_json``.

    >>> decode_payload('{"type":"pool_created"}')
    PoolCreated()
    """
    return engine.decode_payload(text)  # type: ignore[no-any-return]


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


_ERROR_FIELDS = {"Classified": ("kind", "retry", "context", "causal_ids"), "MissingRequiredField": ("field",)}


def _error_from_plain(value: Any) -> AgentError:
    # An object that repeats a key is not exactly a dict (engine.parse_json): a repeated
    # variant key fails here, as in serde.
    if type(value) is not dict or len(value) != 1:
        raise InvalidInput("AgentError: expected an object with exactly one variant key")
    ((variant, body),) = value.items()
    if variant not in VARIANTS:
        raise InvalidInput(f"AgentError: unknown variant {variant!r}")
    if not isinstance(body, dict):
        raise InvalidInput(f"AgentError.{variant}: expected an object")
    fields = _ERROR_FIELDS.get(variant, ("message",))
    for key in fields:
        if key in getattr(body, "repeated", ()):  # the marked object's repeated keys; unknown ones are ignored
            raise InvalidInput(f"AgentError.{variant}.{key}: duplicate field")
    if variant == "Classified":
        for key in fields:
            if key not in body:
                raise InvalidInput(f"AgentError.Classified.{key}: missing field")
        context = engine.from_plain(ErrorContext, body["context"], "AgentError.Classified.context")
        causal = engine.from_plain(CausalIds, body["causal_ids"], "AgentError.Classified.causal_ids")
        try:
            return AgentError(body["kind"], body["retry"], context.message, context=context, causal_ids=causal)
        except ValueError as error:
            raise InvalidInput(f"AgentError.Classified: {error}") from None
    (key,) = fields
    text = body.get(key)
    if type(text) is not str:
        raise InvalidInput(f"AgentError.{variant}.{key}: expected a string")
    if variant == "MissingRequiredField":
        return AgentError.missing_required_field(text)
    if variant == "ContractViolation":
        return AgentError.contract_violation(text)
    return AgentError.host_configuration_needed(text)
