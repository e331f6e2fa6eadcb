"""The replay engine, pure-Python twin of ``_replay.pyx``: same names, results and errors.

Three jobs, all on the model's schema (``_schema``):
* ``to_plain`` / ``from_plain``: model objects to and from JSON-shaped values, following
  the Rust serde rules (omission marks, tags, enum strings, id validation);
  ``dumps``: ``to_plain`` as compact JSON text (serde_json's bytes);
* ``decode_payload``: a record's ``payload_json`` text to a payload object;
* ``PoolState``: a pool's replayed state, fed one payload at a time, with sorted views
  that are updated in proportion to what changed.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

import orjson

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
    UNION,
    E,
    O,
    R,
    Spec,
    make,
)
from .enums import AgentErrorKind, RetryClassification
from .errors import AgentError, InvalidInput
from .ids import id_error
from .model import (
    PAYLOAD_TYPES,
    AgentPoolMember,
    AgentPoolSnapshot,
    AgentPoolStoreConfig,
    AgentPoolStoreCursor,
    AgentPoolStoredMessage,
    AgentPoolStoredWake,
    MessageReceipt,
    WakeRegistration,
)

__all__ = [
    "make",
    "to_plain",
    "dumps",
    "from_plain",
    "decode_payload",
    "replay_rows",
    "decode_row",
    "corrupt_record",
    "PoolState",
    "CONFLICTING_OPEN",
]

CONFLICTING_OPEN = "sqlite agent pool store contains conflicting pool open records"
_PAYLOAD_SPEC = Spec(UNION, PAYLOAD_TYPES)


# ---------------------------------------------------------------- encoding


def to_plain(obj: Any) -> Any:
    """A model object as the JSON-shaped value Rust's serde writes (dicts in wire order)."""
    return _plain_model(obj, getattr(type(obj), "TYPE", None))


def dumps(obj: Any) -> str:
    """A model object's compact JSON text, byte for byte as serde_json writes it."""
    return orjson.dumps(to_plain(obj)).decode("utf-8")


def _plain_model(obj: Any, tag: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {} if tag is None else {"type": tag}
    for field in type(obj)._fields:
        value = getattr(obj, field.name)
        mark = field.mark
        if mark is E:
            if not value:
                continue
        elif mark is O and value is None:
            continue
        out[field.wire] = _plain_value(field.spec, value)
    return out


def _plain_value(spec: Spec, value: Any) -> Any:
    kind = spec.kind
    if kind == MODEL:
        return _plain_model(value, None)
    if kind == UNION:
        return _plain_model(value, value.TYPE)
    if kind == SEQ:
        inner = spec.arg
        if inner.kind <= STR:
            return list(value)
        return [_plain_value(inner, item) for item in value]
    if kind == OPT:
        return None if value is None else _plain_value(spec.arg, value)
    if kind == FILTERSET:
        if value is ANY:
            return "any"
        return {"include": [_plain_value(spec.arg, item) for item in value]}
    if kind == ENUM:
        return value.value
    return value


# ---------------------------------------------------------------- decoding


def from_plain(target: Any, value: Any, path: str) -> Any:
    """Build a model object from a JSON-shaped value; ``target`` is a model class or a ``Spec``."""
    if isinstance(target, Spec):
        return _decode_value(target, value, path)
    return _decode_model(target, value, path)


def _fail(path: str, reason: str) -> InvalidInput:
    return InvalidInput(f"{path}: {reason}")


def _decode_model(cls: Any, value: Any, path: str) -> Any:
    if type(value) is not dict:
        raise _fail(path, f"expected an object for {cls.__name__}, got {_json_type(value)}")
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
            raise _fail(path, f"expected an object, got {_json_type(value)}")
        tag = value.get("type", _ABSENT)
        if tag is _ABSENT:
            raise _fail(path, "missing field `type`")
        cls = spec.arg.get(tag) if type(tag) is str else None
        if cls is None:
            raise _fail(f"{path}.type", f"unknown variant {tag!r}")
        return _decode_model(cls, value, path)
    raise AssertionError(kind)


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
    }.get(type(value), type(value).__name__)


def decode_payload(text: str | bytes) -> Any:
    """A record's ``payload_json`` as a payload object; ``InvalidInput`` if it is not one."""
    try:
        value = orjson.loads(text)
    except (orjson.JSONDecodeError, TypeError) as error:
        raise InvalidInput(f"payload: malformed JSON: {error}") from None
    return _decode_value(_PAYLOAD_SPEC, value, "payload")


def replay_rows(state: PoolState, rows: Any) -> None:
    """Decode and apply ``(seq, kind, payload_json)`` rows in order.

    A row that does not decode, or whose ``kind`` column disagrees with its payload, raises
    ``AgentError(INVALID_STATE_TRANSITION, REPAIR_NEEDED)`` naming the pool and sequence;
    rows before it stay applied, so ``state.cursor`` is the last good record.
    """
    for sequence, kind, text in rows:
        state.apply(decode_row(state.pool_id, sequence, kind, text), sequence)


def decode_row(pool_id: str, sequence: int, kind: str, text: str | bytes) -> Any:
    """One stored row's payload; REPAIR_NEEDED naming the pool and sequence if it is corrupt
    (it does not decode, or its ``kind`` column disagrees with the payload's type)."""
    try:
        payload = decode_payload(text)
    except InvalidInput as error:
        raise corrupt_record(pool_id, sequence, error.message) from None
    if payload.TYPE != kind:
        raise corrupt_record(pool_id, sequence, f"kind column {kind!r} disagrees with payload type {payload.TYPE!r}")
    return payload


def corrupt_record(pool_id: str, sequence: int, reason: str) -> AgentError:
    """The error for a stored record that cannot be replayed."""
    return AgentError(
        AgentErrorKind.INVALID_STATE_TRANSITION,
        RetryClassification.REPAIR_NEEDED,
        f"sqlite agent pool store serialization failure: pool {pool_id!r} record {sequence}: {reason}",
    )


# ---------------------------------------------------------------- pool state


class PoolState:
    """A pool's state replayed from its records, with sorted views kept up to date lazily.

    ``apply`` costs a few dictionary writes; ``snapshot`` reuses the previous snapshot
    while nothing changed and otherwise re-sorts only the keys that changed.
    """

    def __init__(self, pool_id: str) -> None:
        self.pool_id = pool_id
        self.config: AgentPoolStoreConfig | None = None
        self.created = False
        self.cursor = 0
        self.members: dict[str, AgentPoolMember] = {}
        self.messages: dict[str, AgentPoolStoredMessage] = {}
        self.message_dedupe: dict[str, MessageReceipt] = {}
        self.wakes: dict[str, AgentPoolStoredWake] = {}
        self.wake_dedupe: dict[str, WakeRegistration] = {}
        self._members_view = _SortedView()
        self._messages_view = _SortedView()
        self._wakes_view = _SortedView()
        self._topics: tuple[str, ...] = ()
        self._by_topic: dict[str, tuple[AgentPoolMember, ...]] | None = None  # built on first use
        self._snapshot: AgentPoolSnapshot | None = None

    def apply(self, payload: Any, sequence: int) -> None:
        """Apply one decoded payload recorded at ``sequence``."""
        kind = payload.TYPE
        if kind == "run_message":
            stored = payload.stored
            self.message_dedupe[stored.message.idempotency_key] = stored.receipt
            key = stored.message.message_id
            self.messages[key] = stored
            self._messages_view.pending.add(key)
        elif kind == "wake":
            stored = payload.stored
            self.wake_dedupe[stored.condition.idempotency_key] = stored.registration
            key = stored.condition.condition_id
            self.wakes[key] = stored
            self._wakes_view.pending.add(key)
        elif kind == "member_joined":
            member = payload.member
            self.members[member.run_id] = member
            self._members_view.pending.add(member.run_id)
        elif kind == "member_left":
            run_id = payload.member.run_id
            self.members.pop(run_id, None)
            self._members_view.pending.add(run_id)
        elif kind == "pool_created":
            self.created = True
        else:  # pool_opened
            if self.config is not None and self.config != payload.config:
                raise AgentError(
                    AgentErrorKind.INVALID_STATE_TRANSITION, RetryClassification.REPAIR_NEEDED, CONFLICTING_OPEN
                )
            self.config = payload.config
        self.cursor = sequence
        self._snapshot = None

    def snapshot(self) -> AgentPoolSnapshot | None:
        """The snapshot of the records applied so far, or ``None`` if no ``pool_opened`` was seen."""
        config = self.config
        if config is None:
            return None
        if self._snapshot is not None:
            return self._snapshot
        if self._members_view.pending:
            self._refresh_members()
        self._snapshot = make(
            AgentPoolSnapshot,
            (
                self.pool_id,
                self.created,
                self._members_view.cached,
                self._topics,
                config.message_policy,
                config.wake_policy,
                config.policy_refs,
                self._messages_view.values(self.messages),
                self._wakes_view.values(self.wakes),
                make(AgentPoolStoreCursor, (self.cursor,)),
            ),
        )
        return self._snapshot

    def sorted_members(self) -> tuple[AgentPoolMember, ...]:
        """The current members sorted by run id (the snapshot's ``members``), without a snapshot."""
        if self._members_view.pending:
            self._refresh_members()
        return self._members_view.cached

    def sorted_topics(self) -> tuple[str, ...]:
        """The sorted union of the current members' topics (the snapshot's ``topics``)."""
        if self._members_view.pending:
            self._refresh_members()
        return self._topics

    def topic_members(self, topic: str) -> tuple[AgentPoolMember, ...]:
        """The current members with ``topic`` among their topics, sorted by run id."""
        if self._members_view.pending:
            self._refresh_members()
        by_topic = self._by_topic
        if by_topic is None:
            grouped: dict[str, list[AgentPoolMember]] = {}
            for member in self._members_view.cached:
                for name in set(member.topics):  # a member may list a topic twice
                    grouped.setdefault(name, []).append(member)
            by_topic = self._by_topic = {name: tuple(listed) for name, listed in grouped.items()}
        return by_topic.get(topic, ())

    def _refresh_members(self) -> None:
        """Bring the members view and what is derived from it up to date with ``members``."""
        members = self._members_view.values(self.members)
        self._topics = tuple(sorted({topic for member in members for topic in member.topics}))
        self._by_topic = None


class _SortedView:
    """The values of a dict sorted by key, as a tuple, refreshed from the keys that changed."""

    __slots__ = ("keys", "items", "pending", "cached")

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.items: list[Any] = []
        self.pending: set[str] = set()
        self.cached: tuple[Any, ...] = ()

    def values(self, current: dict[str, Any]) -> tuple[Any, ...]:
        pending = self.pending
        if not pending:
            return self.cached
        keys, items = self.keys, self.items
        if len(pending) * 8 > len(keys):
            # Many changes (a cold replay): one sort beats many insertions.
            keys[:] = sorted(current)
            items[:] = [current[key] for key in keys]
        else:
            for key in pending:
                index = bisect_left(keys, key)
                present = index < len(keys) and keys[index] == key
                value = current.get(key, _ABSENT)
                if value is _ABSENT:
                    if present:
                        del keys[index]
                        del items[index]
                elif present:
                    items[index] = value
                else:
                    keys.insert(index, key)
                    items.insert(index, value)
        pending.clear()
        self.cached = tuple(items)
        return self.cached
