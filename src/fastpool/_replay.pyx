# cython: language_level=3, boundscheck=False, wraparound=False
"""The replay engine, compiled twin of ``_replay_py.py``: same names, results and errors.

Laid out as msgpack lays out ``_cmsgpack.pyx``: this file holds the directives, the public
names and the replay loop, and includes one file per job, in the order of ``_replay_py``'s
sections (diff a section with its twin side by side):

* ``_plans.pxi``: each model class read once from the schema into a plan;
* ``_writer.pxi``: ``to_plain`` and ``dumps`` (the text written from C, ``_replay.h``);
* ``_reader.pxi``: ``from_plain``, ``parse_json``, ``decode_payload`` (the text read in C);
* the replay loop below: ``replay_rows`` and ``decode_row``.

Only the valid path is fast: anything the plans, the writer or the reader do not cover
exactly goes to ``_replay_py``, so an odd input gets the twin's result or exception.
"""

cimport cython

from itertools import chain

from . import _replay_py as _py
from .enums import AgentErrorKind, RetryClassification
from .errors import AgentError, InvalidInput
from .model import AgentPoolSnapshot, AgentPoolStoreCursor

__all__ = [
    "make", "to_plain", "dumps", "from_plain", "parse_json", "decode_payload", "replay_rows", "decode_row",
    "corrupt_record", "PoolState", "CONFLICTING_OPEN",
]

CONFLICTING_OPEN = "sqlite agent pool store contains conflicting pool open records"

include "_plans.pxi"
include "_writer.pxi"
include "_reader.pxi"


# ---------------------------------------------------------------- replay


def replay_rows(state, rows):
    """Decode and apply ``(seq, kind, payload_json)`` rows in order.

    A row that does not decode, or whose ``kind`` column disagrees with its payload, raises
    ``AgentError(INVALID_STATE_TRANSITION, REPAIR_NEEDED)`` naming the pool and sequence;
    rows before it stay applied, so ``state.cursor`` is the last good record.
    """
    cdef PoolState fast = state if type(state) is PoolState else None
    remaining = iter(rows)
    for row in remaining:
        if type(row) is not tuple or len(<tuple>row) != 3:
            # Unpacking errors read differently from Cython: the twin takes over from here.
            return _py.replay_rows(state, chain((row,), remaining))
        sequence, kind, text = <tuple>row
        payload = decode_row(state.pool_id, sequence, kind, text)
        if fast is not None:
            fast._apply(payload, sequence)
        else:
            state.apply(payload, sequence)


def decode_row(pool_id, sequence, kind, text):
    """One stored row's payload; REPAIR_NEEDED naming the pool and sequence if it is corrupt
    (it does not decode, or its ``kind`` column disagrees with the payload's type)."""
    try:
        payload = _decode_payload(text)
    except InvalidInput as error:
        raise corrupt_record(pool_id, sequence, error.message) from None
    if payload.TYPE != kind:
        raise corrupt_record(pool_id, sequence, f"kind column {kind!r} disagrees with payload type {payload.TYPE!r}")
    return payload


def corrupt_record(pool_id, sequence, reason):
    """The error for a stored record that cannot be replayed."""
    return AgentError(
        AgentErrorKind.INVALID_STATE_TRANSITION,
        RetryClassification.REPAIR_NEEDED,
        f"sqlite agent pool store serialization failure: pool {pool_id!r} record {sequence}: {reason}",
    )


# ---------------------------------------------------------------- pool state

from bisect import bisect_left

cdef _Model _SNAPSHOT = _required_plan(AgentPoolSnapshot)
cdef _Model _CURSOR = _required_plan(AgentPoolStoreCursor)


cdef class PoolState:
    """A pool's state replayed from its records, with sorted views kept up to date lazily.

    ``apply`` costs a few dictionary writes; ``snapshot`` reuses the previous snapshot
    while nothing changed and otherwise re-sorts only the keys that changed.
    """

    # Untyped, like the twin's attributes: callers may store anything in them.
    cdef public object pool_id, config, created, cursor
    cdef public object members, messages, message_dedupe, wakes, wake_dedupe
    cdef _SortedView _members_view, _messages_view, _wakes_view
    cdef tuple _topics
    cdef object _by_topic  # dict topic -> members, or None: built on first use
    cdef object _snapshot
    # Like the twin's instances: extra attributes and weak references work.
    cdef dict __dict__
    cdef object __weakref__

    def __init__(self, pool_id):
        self.pool_id = pool_id
        self.config = None
        self.created = False
        self.cursor = 0
        self.members = {}
        self.messages = {}
        self.message_dedupe = {}
        self.wakes = {}
        self.wake_dedupe = {}
        self._members_view = _SortedView()
        self._messages_view = _SortedView()
        self._wakes_view = _SortedView()
        self._topics = ()
        self._by_topic = None
        self._snapshot = None

    def apply(self, payload, sequence):
        """Apply one decoded payload recorded at ``sequence``."""
        self._apply(payload, sequence)

    cdef _apply(self, payload, sequence):
        # Statements split where Python evaluates ``d[key] = value``'s value first, so a
        # malformed payload fails on the same attribute as in the twin.
        kind = payload.TYPE
        if kind == "run_message":
            stored = payload.stored
            receipt = stored.receipt
            self.message_dedupe[stored.message.idempotency_key] = receipt
            key = stored.message.message_id
            self.messages[key] = stored
            self._messages_view.pending.add(key)
        elif kind == "wake":
            stored = payload.stored
            registration = stored.registration
            self.wake_dedupe[stored.condition.idempotency_key] = registration
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
                raise AgentError(AgentErrorKind.INVALID_STATE_TRANSITION, RetryClassification.REPAIR_NEEDED, CONFLICTING_OPEN)
            self.config = payload.config
        self.cursor = sequence
        self._snapshot = None

    def snapshot(self):
        """The snapshot of the records applied so far, or ``None`` if no ``pool_opened`` was seen."""
        config = self.config
        if config is None:
            return None
        if self._snapshot is not None:
            return self._snapshot
        if self._members_view.pending:
            self._refresh_members()
        members = self._members_view.cached
        # One statement per step, in the twin's order of evaluation.
        message_policy = config.message_policy
        wake_policy = config.wake_policy
        policy_refs = config.policy_refs
        messages = self._messages_view.values(self.messages)
        wakes = self._wakes_view.values(self.wakes)
        cursor = _make(_CURSOR, (self.cursor,))
        self._snapshot = _make(
            _SNAPSHOT,
            (self.pool_id, self.created, members, self._topics, message_policy, wake_policy, policy_refs,
             messages, wakes, cursor),
        )
        return self._snapshot

    def sorted_members(self):
        """The current members sorted by run id (the snapshot's ``members``), without a snapshot."""
        if self._members_view.pending:
            self._refresh_members()
        return self._members_view.cached

    def sorted_topics(self):
        """The sorted union of the current members' topics (the snapshot's ``topics``)."""
        if self._members_view.pending:
            self._refresh_members()
        return self._topics

    def topic_members(self, topic):
        """The current members with ``topic`` among their topics, sorted by run id."""
        if self._members_view.pending:
            self._refresh_members()
        by_topic = self._by_topic
        if by_topic is None:
            grouped = {}
            for member in self._members_view.cached:
                for name in set(member.topics):  # a member may list a topic twice
                    grouped.setdefault(name, []).append(member)
            by_topic = self._by_topic = {name: tuple(listed) for name, listed in grouped.items()}
        return by_topic.get(topic, ())

    cdef _refresh_members(self):
        """Bring the members view and what is derived from it up to date with ``members``."""
        members = self._members_view.values(self.members)
        self._topics = tuple(sorted({topic for member in members for topic in member.topics}))
        self._by_topic = None


@cython.final
cdef class _SortedView:
    """The values of a dict sorted by key, as a tuple, refreshed from the keys that changed."""

    cdef list keys
    cdef list items
    cdef set pending
    cdef tuple cached

    def __init__(self):
        self.keys = []
        self.items = []
        self.pending = set()
        self.cached = ()

    cdef tuple values(self, current):
        cdef Py_ssize_t index
        cdef bint present
        pending, keys, items = self.pending, self.keys, self.items
        if not pending:
            return self.cached
        if len(pending) * 8 > len(keys):
            # Many changes (a cold replay): one sort beats many insertions.
            keys[:] = sorted(current)
            items[:] = [current[key] for key in keys]
        else:
            for key in pending:
                index = bisect_left(keys, key)
                present = index < len(keys) and keys[index] == key
                value = current.get(key, _UNSEEN)
                if value is _UNSEEN:
                    if present:
                        del keys[index]
                        del items[index]
                elif present:
                    items[index] = value
                else:
                    keys.insert(index, key)
                    items.insert(index, value)
        pending.clear()
        self.cached = fp_frozen(items)
        return self.cached
