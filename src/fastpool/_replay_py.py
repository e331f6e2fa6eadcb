"""The replay engine, pure-Python twin of ``_replay.pyx``: same names, results and errors.

In the sections, names and order of the compiled engine's parts, so that a section and its
twin can be read side by side (``_plans.pxi``, ``_writer.pxi``, ``_reader.pxi``, the replay
loop in ``_replay.pyx``), all on the model's schema (``_schema``):

* plans: none; the twin reads the schema's ``Field`` rows directly, and ``make`` is
  ``_schema.make``;
* writer: ``to_plain`` is ``_schema.to_plain``, model objects to JSON-shaped values following
  the Rust serde rules (omission marks, tags, enum strings); ``dumps``, that as compact JSON
  text (serde_json's bytes);
* reader: ``from_plain``, JSON-shaped values to model objects (ids validated);
  ``parse_json``, JSON text to JSON-shaped values, marking objects that repeat a key;
  ``decode_text``, the two in one (the compiled engine reads plain text straight into objects);
  ``decode_payload``, a record's ``payload_json`` text to a payload object;
* replay: ``replay_rows`` and ``decode_row``, stored rows through ``PoolState``, a pool's
  replayed state, fed one payload at a time, with sorted views that are updated in
  proportion to what changed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from ._pool_state import PoolState
from ._schema import (
    ANY,
    BOOL,
    ENUM,
    FILTERSET,
    ID,
    INT_LIMITS,
    MODEL,
    OPT,
    SEQ,
    STR,
    TAGGED,
    UNION,
    R,
    Spec,
    make,
    to_plain,
)
from .enums import AgentErrorKind, RetryClassification
from .errors import AgentError, InvalidInput
from .ids import id_error
from .model import PAYLOAD_TYPES

__all__ = [
    "make",
    "to_plain",
    "dumps",
    "from_plain",
    "parse_json",
    "decode_text",
    "decode_payload",
    "replay_rows",
    "decode_row",
    "corrupt_record",
    "PoolState",
]

_PAYLOAD_SPEC = Spec(UNION, PAYLOAD_TYPES)


# ---------------------------------------------------------------- plans
# None: the twin reads the schema's Field rows as it goes, and ``make`` is ``_schema.make``.


# ---------------------------------------------------------------- writer
# ``to_plain`` is the schema's own (``_schema.to_plain``, serde's Serialize): the model needs
# it below the engines, to fingerprint an ``EventFilter``.


def dumps(obj: Any) -> str:
    """A model object's compact JSON text, byte for byte as serde_json writes it."""
    return orjson.dumps(to_plain(obj)).decode("utf-8")


# ---------------------------------------------------------------- reader


def from_plain(target: Any, value: Any, path: str) -> Any:
    """Build a model object from a JSON-shaped value; ``target`` is a model class or a ``Spec``."""
    if isinstance(target, Spec):
        return _decode_value(target, value, path)
    return _decode_model(target, value, path)


def _fail(path: str, reason: str) -> InvalidInput:
    return InvalidInput(f"{path}: {reason}")


def _decode_model(cls: Any, value: Any, path: str) -> Any:
    if type(value) is not dict:
        if type(value) is not _Repeated:
            raise _fail(path, f"expected an object for {cls.__name__}, got {_json_type(value)}")
        _reject_repeated(value, [field.wire for field in cls._fields], path)
    values = []
    for field in cls._fields:
        item = value.get(field.wire, _ABSENT)
        if item is _ABSENT or (item is None and field.spec.kind == OPT):
            if field.mark is R and field.spec.kind != OPT:
                raise _fail(f"{path}.{field.wire}", "missing field")
            values.append(None if field.spec.kind == OPT else ())
            continue
        values.append(_decode_value(field.spec, item, f"{path}.{field.wire}"))
    return make(cls, tuple(values))


_ABSENT: Any = object()


def _decode_value(spec: Spec, value: Any, path: str) -> Any:
    kind = spec.kind
    if kind == ID:
        if type(value) is not str:
            raise _fail(path, f"expected a string, got {_json_type(value)}")
        error = id_error(value)
        if error is not None:
            raise _fail(path, error)
        return value
    if kind == STR:
        if type(value) is not str:
            raise _fail(path, f"expected a string, got {_json_type(value)}")
        return value
    if kind == MODEL:
        return _decode_model(spec.arg, value, path)
    if kind == SEQ:
        if type(value) is not list:
            raise _fail(path, f"expected an array, got {_json_type(value)}")
        inner = spec.arg
        return tuple([_decode_value(inner, item, f"{path}[{i}]") for i, item in enumerate(value)])
    if kind == ENUM:
        if type(value) is not str:
            raise _fail(path, f"expected a string, got {_json_type(value)}")
        try:
            return spec.arg(value)
        except ValueError:
            raise _fail(path, f"unknown variant {value!r} of {spec.arg.__name__}") from None
    if kind == OPT:
        return _decode_value(spec.arg, value, path)
    if kind == BOOL:
        if type(value) is not bool:
            raise _fail(path, f"expected a boolean, got {_json_type(value)}")
        return value
    if kind in INT_LIMITS:
        if type(value) is not int:
            raise _fail(path, f"expected an unsigned integer, got {_json_type(value)}")
        low, high = INT_LIMITS[kind]
        if not low <= value <= high:
            raise _fail(path, f"integer {value} out of range {low}..{high}")
        return value
    if kind == FILTERSET:
        # Externally tagged: "any" or an object with exactly one variant key
        # (serde_json also reads the unit variant as {"any": null}).
        if value == "any" or (type(value) is dict and len(value) == 1 and value.get("any", False) is None):
            return ANY
        if type(value) is not dict or len(value) != 1 or "include" not in value:
            raise _fail(path, 'expected "any" or {"include": [...]}')
        return _decode_value(Spec(SEQ, spec.arg), value["include"], f"{path}.include")
    if kind == UNION:
        if type(value) is not dict:
            if type(value) is not _Repeated:
                raise _fail(path, f"expected an object, got {_json_type(value)}")
            _reject_repeated(value, ("type",), path)
        tag = value.get("type", _ABSENT)
        if tag is _ABSENT:
            raise _fail(path, f"missing field `type`, expected {_one_of(spec.arg)}")
        cls = spec.arg.get(tag) if type(tag) is str else None
        if cls is None:
            raise _fail(f"{path}.type", f"unknown variant {tag!r}, expected {_one_of(spec.arg)}")
        return _decode_model(cls, value, path)
    if kind == TAGGED:
        key, variants = spec.arg
        return _decode_external(variants, value, path) if key is None else _decode_internal(key, variants, value, path)
    raise AssertionError(kind)


def _decode_internal(key: str, variants: dict[str, Any], value: Any, path: str) -> Any:
    """serde's ``tag = key``: the UNION rule with another tag key."""
    if type(value) is not dict:
        if type(value) is not _Repeated:
            raise _fail(path, f"expected an object, got {_json_type(value)}")
        _reject_repeated(value, (key,), path)
    tag = value.get(key, _ABSENT)
    if tag is _ABSENT:
        raise _fail(path, f"missing field `{key}`, expected {_one_of(variants)}")
    cls = variants.get(tag) if type(tag) is str else None
    if cls is None:
        raise _fail(f"{path}.{key}", f"unknown variant {tag!r}, expected {_one_of(variants)}")
    return _decode_model(cls, value, path)


def _decode_external(variants: dict[str, Any], value: Any, path: str) -> Any:
    """serde's default tagging: a unit variant as its name, any other as ``{name: content}``
    (serde_json also reads a unit variant as ``{name: null}``)."""
    if type(value) is str:
        tag, content = value, None
    elif type(value) is dict and len(value) == 1:
        ((tag, content),) = value.items()
    else:
        raise _fail(path, f"expected a variant name or an object with one variant key, got {_json_type(value)}")
    cls = variants.get(tag)
    if cls is None:
        raise _fail(path, f"unknown variant {tag!r}, expected {_one_of(variants)}")
    if not cls._fields:
        if content is not None:
            raise _fail(f"{path}.{tag}", f"expected unit variant, got {_json_type(content)}")
        return make(cls, ())
    if type(value) is str:
        raise _fail(path, f"variant {tag!r} needs content")
    if getattr(cls, "_newtype", False):
        (field,) = cls._fields
        return make(cls, (_decode_value(field.spec, content, f"{path}.{tag}"),))
    return _decode_model(cls, content, f"{path}.{tag}")


def _one_of(tags: Iterable[Any]) -> str:
    names = [repr(tag) for tag in tags]
    return names[0] if len(names) == 1 else "one of " + ", ".join(names)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "an object",
        _Repeated: "an object",
    }.get(type(value), type(value).__name__)


class _Repeated(dict):  # type: ignore[type-arg]
    """A JSON object in which the keys ``repeated`` came more than once (each keeps its last
    value, as with orjson). Not exactly a ``dict``, so every decoder that wants one rejects it,
    as serde rejects a repeated variant key; a struct's decoder rejects it only if one of its
    own fields repeated, since serde skips unknown keys, repeated or not, unread."""

    __slots__ = ("repeated",)
    repeated: frozenset[str]


def _reject_repeated(value: _Repeated, keys: Iterable[str], path: str) -> None:
    for key in keys:
        if key in value.repeated:
            raise _fail(f"{path}.{key}", "duplicate field")


def _object(pairs: list[tuple[str, Any]]) -> Any:
    value = dict(pairs)
    if len(value) == len(pairs):
        return value
    seen: set[str] = set()
    repeated: set[str] = set()
    for key, _ in pairs:
        (repeated if key in seen else seen).add(key)
    marked = _Repeated(value)
    marked.repeated = frozenset(repeated)
    return marked


def _int(text: str) -> Any:
    number = int(text)
    return number if -(2**63) <= number <= 2**64 - 1 else float(text)  # orjson's reading


# Key by key; numbers as orjson reads them (the text was valid for orjson, so nothing else differs).
_KEYED = json.JSONDecoder(object_pairs_hook=_object, parse_int=_int)


def parse_json(text: str | bytes, path: str) -> Any:
    """JSON text as the JSON-shaped values ``from_plain`` takes; an object that repeats a key
    comes back marked, so that a repeated field is rejected as serde rejects it.
    ``InvalidInput`` (naming ``path``) if the text is not JSON."""
    try:
        value = orjson.loads(text)
    except (orjson.JSONDecodeError, TypeError) as error:
        raise InvalidInput(f"{path}: malformed JSON: {error}") from None
    # orjson keeps one entry per key. When writing the value back gives the very text (as for
    # every record serde_json or fastpool wrote), no key came twice; other text (spaced,
    # escaped, or with a key repeated) is read again, key by key.
    raw = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    try:
        if orjson.dumps(value) == raw:
            return value
    except orjson.JSONEncodeError:  # nested deeper than orjson writes
        pass
    try:
        return _KEYED.decode(raw.decode("utf-8"))
    except RecursionError:
        raise InvalidInput(f"{path}: malformed JSON: recursion limit exceeded") from None


def decode_text(target: Any, text: str | bytes, path: str) -> Any:
    """``from_plain(target, parse_json(text, path), path)``: a model class read from JSON text."""
    return from_plain(target, parse_json(text, path), path)


def decode_payload(text: str | bytes) -> Any:
    """A record's ``payload_json`` as a payload object; ``InvalidInput`` if it is not one."""
    return _decode_value(_PAYLOAD_SPEC, parse_json(text, "payload"), "payload")


# ---------------------------------------------------------------- replay


def replay_rows(state: PoolState, rows: Any, seen: Callable[[Any, int], object] | None = None) -> None:
    """Decode and apply ``(seq, kind, payload_json)`` rows in order; ``seen(payload, seq)``
    after each, if given.

    A row that ``decode_row`` refuses raises ``corrupt_record``'s error, worded with the
    state's ``store_name``; rows before it stay applied, so ``state.cursor`` is the last good
    record.
    """
    for sequence, kind, text in rows:
        try:
            payload = decode_row(kind, text)
        except InvalidInput as error:
            raise corrupt_record(state.store_name, state.pool_id, sequence, error.message) from None
        state.apply(payload, sequence)
        if seen is not None:
            seen(payload, sequence)


def decode_row(kind: str, text: str | bytes) -> Any:
    """A stored row's payload; ``InvalidInput`` saying why if the row is corrupt (its text
    does not decode, or its ``kind`` column disagrees with the payload's type)."""
    payload = decode_payload(text)
    if payload.TYPE != kind:
        raise InvalidInput(f"kind column {kind!r} disagrees with payload type {payload.TYPE!r}")
    return payload


def corrupt_record(store_name: str, pool_id: str, sequence: int, reason: str) -> AgentError:
    """The error for a stored record that cannot be replayed, worded by the store that read it."""
    return AgentError(
        AgentErrorKind.INVALID_STATE_TRANSITION,
        RetryClassification.REPAIR_NEEDED,
        f"{store_name} serialization failure: pool {pool_id!r} record {sequence}: {reason}",
    )
