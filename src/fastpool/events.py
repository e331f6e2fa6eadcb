"""Event buses: where ``AgentPool`` publishes one ``EventFrame`` per transition and scans for wakes.

``AgentEventBus`` is the port a host provides; ``InMemoryAgentEventBus`` behaves as the Rust SDK's
in-memory bus: it keeps every frame, numbers them, and answers filtered subscriptions
from its history, bounded by the filter's queue. ``envelope_matches`` is the SDK's filter rule.

>>> from fastpool import EventFilter, EventKind
>>> bus = InMemoryAgentEventBus()
>>> list(bus.subscribe_filtered(EventFilter(kinds=(EventKind.RUN_COMPLETED,)).compile()))
[]
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from typing import Any, Protocol, runtime_checkable

from ._compat import engine
from ._schema import ANY, make
from .enums import TERMINAL_EVENT_KINDS, EventKind, EventOverflowReason, SubscriberOverflowPolicy
from .errors import AgentError, InvalidInput
from .model import (
    AgentEvent,
    CompiledEventFilter,
    EventCursor,
    EventEnvelope,
    EventFilter,
    EventFrame,
    EventOverflowNotice,
    EventStreamScope,
    FilterScope,
    RedactedSummaryPayload,
    SubscriberQueueConfig,
)

__all__ = ["AgentEventBus", "InMemoryAgentEventBus", "envelope_matches", "cursor_scope"]

BACKPRESSURE_REJECTED = "InvalidOverflowPolicy: backpressure_caller is rejected for live event bus subscriptions"
SCOPE_MISMATCH = "cursor scope mismatch for requested event stream"

# Frames a full queue may summarise away (Rust ``is_progress_event``).
_PROGRESS_KINDS = frozenset(
    {
        EventKind.MODEL_STREAM_DELTA,
        EventKind.STREAM_RULE_REPEAT_STATE_RECORDED,
        EventKind.REALTIME_INPUT_SENT,
        EventKind.REALTIME_OUTPUT_RECEIVED,
        EventKind.REALTIME_BACKPRESSURE_APPLIED,
        EventKind.ISOLATION_PROCESS_IO_CAPTURED,
        EventKind.ISOLATION_PROCESS_STATS_RECORDED,
        EventKind.USAGE_RECORDED,
        EventKind.COST_ESTIMATED,
        EventKind.COST_CORRECTED,
    }
)


@runtime_checkable
class AgentEventBus(Protocol):
    """The event-bus port: publish frames, and read back the ones a compiled filter matches.

    ``publish`` assigns the frame its ``event_seq``. ``subscribe_filtered`` yields the matching
    frames after ``cursor`` (all of history when ``None``), their cursors scoped to the filter;
    ``AgentPool`` takes the first one to trigger a wake.
    """

    def publish(self, frame: EventFrame) -> None:
        """Publish ``frame`` (the bus numbers it)."""
        ...

    def subscribe_filtered(
        self, filter: CompiledEventFilter, cursor: EventCursor | None = None
    ) -> Iterator[EventFrame]:
        """The frames ``filter`` matches after ``cursor``, in bus order."""
        ...


def cursor_scope(filter: CompiledEventFilter) -> FilterScope:
    """The scope of a filtered subscription's cursors: the filter's id and fingerprint."""
    return FilterScope(filter_id=filter.filter_id, filter_fingerprint=filter.filter_fingerprint)


def envelope_matches(criteria: EventFilter, envelope: EventEnvelope) -> bool:
    """Whether ``envelope`` passes every set of ``criteria``.

    A set is ``ANY`` or a tuple the value must be in (``()`` matches nothing); an optional
    value that is absent fails a tuple; for refs, correlation keys and tags one match is
    enough; ``terminal_only`` asks for a terminal kind. Queue and payload access play no part.
    """
    if criteria.terminal_only and envelope.event_kind not in TERMINAL_EVENT_KINDS:
        return False
    destination = envelope.destination
    return (
        _plain(criteria.run_ids, envelope.run_id)
        and _optional(criteria.session_ids, envelope.session_id)
        and _plain(criteria.agent_ids, envelope.agent_id)
        and _optional(criteria.turn_ids, envelope.turn_id)
        and _plain(criteria.families, envelope.event_family)
        and _plain(criteria.kinds, envelope.event_kind)
        and _plain(criteria.source_kinds, envelope.source.kind)
        and _optional(criteria.destination_kinds, None if destination is None else destination.kind)
        and _plain(criteria.subject_kinds, envelope.subject_ref.kind)
        and _any_of(criteria.related_entity_kinds, [ref.kind for ref in envelope.related_refs])
        and _any_of(criteria.correlation_keys, [entry.key for entry in envelope.correlation.entries])
        and _any_of(criteria.tags, envelope.tags)
        and _plain(criteria.privacy_classes, envelope.privacy)
        and _plain(criteria.delivery_semantics, envelope.delivery_semantics)
    )


def _plain(include: Any, value: Any) -> bool:
    return include is ANY or value in include


def _optional(include: Any, value: Any) -> bool:
    return include is ANY or (value is not None and value in include)


def _any_of(include: Any, values: Iterable[Any]) -> bool:
    return include is ANY or any(value in include for value in values)


def _with_cursor(frame: EventFrame, scope: EventStreamScope, event_seq: int) -> EventFrame:
    """``frame`` numbered ``event_seq``, its cursor re-derived from its envelope in ``scope``."""
    event = frame.event
    envelope = event.envelope
    if envelope.event_seq != event_seq:
        values = list(EventEnvelope._values(envelope))
        values[2] = event_seq  # event_seq: the envelope's third field
        envelope = engine.make(EventEnvelope, tuple(values))  # compiled when built (35 fields)
        event = make(AgentEvent, (envelope, event.payload))
    cursor = make(EventCursor, (scope, envelope.event_seq, envelope.event_id, envelope.journal_cursor))
    return make(EventFrame, (event, cursor, frame.archive_cursor, frame.overflow))


def _compatible(requested: EventStreamScope, cursor: EventCursor | None) -> None:
    if cursor is None:
        return
    given = cursor.scope
    if type(given) is not type(requested):
        raise AgentError.contract_violation(SCOPE_MISMATCH)
    if isinstance(requested, FilterScope):
        same = requested.filter_fingerprint == given.filter_fingerprint  # type: ignore[union-attr]
    else:
        same = requested == given
    if not same:
        raise AgentError.contract_violation(SCOPE_MISMATCH)


class InMemoryAgentEventBus:
    """A bus in memory that keeps every frame; safe to share between threads.

    ``publish`` numbers frames 1, 2, 3 ... per bus (a frame's own ``event_seq`` is replaced)
    and re-derives its cursor. ``subscribe_filtered`` checks the cursor's scope, refuses a
    ``backpressure_caller`` queue, keeps the matching frames in bus order with cursors scoped
    to the filter, and bounds them by the filter's queue as Rust does. The history is
    not bounded: scans are linear in everything published.
    """

    def __init__(self) -> None:
        # Frames as published; each is numbered (its event_seq and cursor rebuilt) when first
        # read, not on the publish path: publish_i holds event_seq i + 1.
        self._published: list[EventFrame] = []
        self._numbered: list[EventFrame] = []
        self._lock = threading.Lock()

    @property
    def frames(self) -> list[EventFrame]:
        """Every frame published, in publish order, numbered as stored (a new list)."""
        with self._lock:
            numbered, published = self._numbered, self._published
            for index in range(len(numbered), len(published)):
                frame = published[index]
                numbered.append(_with_cursor(frame, frame.cursor.scope, index + 1))
            return list(numbered)

    def publish(self, frame: EventFrame) -> None:
        """Number ``frame`` (the bus's next ``event_seq``) and keep it."""
        if not isinstance(frame, EventFrame):
            raise InvalidInput(f"frame: expected EventFrame, got {type(frame).__name__}")
        with self._lock:
            self._published.append(frame)

    def subscribe_filtered(
        self, filter: CompiledEventFilter, cursor: EventCursor | None = None
    ) -> Iterator[EventFrame]:
        """The frames ``filter`` matches after ``cursor``, bounded by ``filter.queue``, as an iterator."""
        scope = cursor_scope(filter)
        _compatible(scope, cursor)
        queue = filter.queue
        if queue.overflow is SubscriberOverflowPolicy.BACKPRESSURE_CALLER:
            raise AgentError.contract_violation(BACKPRESSURE_REJECTED)
        criteria = filter.criteria
        start = 0 if cursor is None else cursor.event_seq  # the frames after the cursor's
        with self._lock:
            history = self._published[start:]
        matched = [
            _with_cursor(frame, scope, start + offset + 1)
            for offset, frame in enumerate(history)
            if envelope_matches(criteria, frame.event.envelope)
        ]
        return iter(_bounded(matched, queue))

    def __len__(self) -> int:
        return len(self._published)

    def __repr__(self) -> str:
        return f"InMemoryAgentEventBus({len(self._published)} frames)"


# ---------------------------------------------------------------- queue bounds (Rust apply_queue_bounds)


def _terminal(frame: EventFrame) -> bool:
    return frame.event.envelope.event_kind in TERMINAL_EVENT_KINDS


class _Drops:
    """What was dropped since the last notice: count, first and last cursor, the first journal cursor."""

    def __init__(self) -> None:
        self.count = 0
        self.first: EventCursor | None = None
        self.last: EventCursor | None = None
        self.repair_from: str | None = None
        self.terminal = False
        self.reason: EventOverflowReason | None = None

    def record(self, frame: EventFrame, reason: EventOverflowReason) -> None:
        self.count += 1
        if self.first is None:
            self.first = frame.cursor
        self.last = frame.cursor
        if self.repair_from is None:
            self.repair_from = frame.cursor.journal_cursor
        self.terminal |= _terminal(frame)
        if self.reason is None:
            self.reason = reason

    def notice(self, policy: SubscriberOverflowPolicy) -> EventOverflowNotice:
        assert self.last is not None, "a notice follows a drop"
        reason = self.reason or EventOverflowReason.SUBSCRIBER_QUEUE_FULL
        return EventOverflowNotice(
            policy=policy,
            dropped_count=self.count,
            gap_start=self.first,
            gap_end=self.last,
            repair_from=self.repair_from,
            terminal_preserved=not self.terminal,
            reason=EventOverflowReason.SUBSCRIBER_QUEUE_FULL if self.terminal else reason,
        )


class _Summary:
    """Progress frames summarised into one (``summarize_and_continue``)."""

    def __init__(self) -> None:
        self.count = 0
        self.first: EventCursor | None = None
        self.repair_from: str | None = None
        self.frame: EventFrame | None = None

    def record(self, frame: EventFrame) -> None:
        self.count += 1
        if self.first is None:
            self.first = frame.cursor
        if self.repair_from is None:
            self.repair_from = frame.cursor.journal_cursor
        self.frame = frame

    def take(self) -> EventFrame | None:
        frame = self.frame
        if not self.count or frame is None:
            return None
        notice = EventOverflowNotice(
            policy=SubscriberOverflowPolicy.SUMMARIZE_AND_CONTINUE,
            dropped_count=self.count,
            gap_start=self.first,
            gap_end=frame.cursor,
            repair_from=self.repair_from,
            terminal_preserved=True,
            reason=EventOverflowReason.POLICY_DROPPED_PROGRESS,
        )
        summary = RedactedSummaryPayload(
            redacted_summary=f"redacted progress summary for {self.count} dropped progress frames"
        )
        summarised: EventFrame = frame.replace(
            event=AgentEvent(envelope=frame.event.envelope, payload=summary), overflow=notice
        )
        return summarised


def _bounded(frames: list[EventFrame], queue: SubscriberQueueConfig) -> list[EventFrame]:
    """The frames a subscriber with ``queue`` receives, with overflow notices after drops."""
    capacity = queue.capacity
    normal = capacity - min(queue.terminal_reserve, capacity)
    policy = queue.overflow
    kept: list[EventFrame] = []
    drops = _Drops()
    summary = _Summary()

    def room() -> bool:
        return len(kept) < capacity and sum(not _terminal(frame) for frame in kept) < normal

    def push(frame: EventFrame) -> None:
        nonlocal drops
        if drops.count:
            frame = frame.replace(overflow=drops.notice(policy))
            drops = _Drops()
        kept.append(frame)

    def flush() -> None:
        nonlocal summary
        frame, summary = summary.take(), _Summary()
        if frame is None:
            return
        if room():
            push(frame)
        else:
            drops.record(frame, EventOverflowReason.POLICY_DROPPED_PROGRESS)

    def drop_oldest(test: Any, reason: EventOverflowReason) -> bool:
        for index, frame in enumerate(kept):
            if test(frame):
                drops.record(kept.pop(index), reason)
                return True
        return False

    for frame in frames:
        if _terminal(frame):
            flush()
            while len(kept) >= capacity:
                if not drop_oldest(lambda f: not _terminal(f), EventOverflowReason.POLICY_DROPPED_NON_TERMINAL):
                    drops.record(kept.pop(0), EventOverflowReason.SUBSCRIBER_QUEUE_FULL)
            push(frame)
            continue
        progress = frame.event.envelope.event_kind in _PROGRESS_KINDS
        if policy is SubscriberOverflowPolicy.DROP_NON_TERMINAL:
            if room():
                push(frame)
            else:
                drops.record(frame, EventOverflowReason.POLICY_DROPPED_NON_TERMINAL)
        elif policy is SubscriberOverflowPolicy.DROP_PROGRESS:
            if room():
                push(frame)
            elif progress:
                drops.record(frame, EventOverflowReason.POLICY_DROPPED_PROGRESS)
            elif drop_oldest(
                lambda f: f.event.envelope.event_kind in _PROGRESS_KINDS, EventOverflowReason.POLICY_DROPPED_PROGRESS
            ):
                push(frame)
            else:
                drops.record(frame, EventOverflowReason.SUBSCRIBER_QUEUE_FULL)
        elif policy is SubscriberOverflowPolicy.SUMMARIZE_AND_CONTINUE:
            if progress:
                summary.record(frame)
                continue
            flush()
            if room():
                push(frame)
            else:
                drops.record(frame, EventOverflowReason.SUBSCRIBER_QUEUE_FULL)
        else:  # FAIL_SUBSCRIBER: the stream ends at the first drop, its notice on the last frame
            if room():
                push(frame)
                continue
            drops.record(frame, EventOverflowReason.SUBSCRIBER_QUEUE_FULL)
            if kept:
                kept[-1] = kept[-1].replace(overflow=drops.notice(policy))
            return kept
    flush()
    if drops.count and kept:
        kept[-1] = kept[-1].replace(overflow=drops.notice(policy))
    return kept
