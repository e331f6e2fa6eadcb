"""The event archive as the coordinator's ``AgentEventBus``: ``ArchiveEventBus``.

Every host and process on the database shares one bus: ``publish`` appends a frame to
``event_archive_frames`` (numbered ``MAX(seq)+1`` across every writer, as the archive numbers
frames) and ``subscribe_filtered`` reads the archive, so a poll or a subscription sees every
host's events. Nothing is kept in memory.

A wake's first match (``first_match``) is looked up in fastpool's side table
``fastpool_event_index`` (each frame's run and kind, written with the frame), batch by batch
from the oldest candidate, so its cost follows the candidates before the first match, not the
archive's size. Frames another program (a Rust host) appends without the side table are seen
by ``subscribe_filtered`` but not by ``first_match``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .. import wire
from ..enums import AgentErrorKind, RetryClassification, SubscriberOverflowPolicy
from ..errors import AgentError, InvalidInput
from ..events import BACKPRESSURE_REJECTED, _bounded, _compatible, _with_cursor, cursor_scope, envelope_matches
from ..model import CompiledEventFilter, EventCursor, EventFrame
from ._base import Run
from ._codec import decode_stored
from .archive import EventArchiveSurface

__all__ = ["ArchiveEventBus"]

#: Frames read per statement while scanning: enough to amortise a statement, few enough to stop early.
_BATCH = 256


class ArchiveEventBus:
    """An ``AgentEventBus`` over an event archive (``SqliteEventArchive``, ``PostgresEventArchive``).

    ``publish`` numbers a frame with the archive's next ``seq`` (its ``event_seq`` and cursor
    re-derived as ``InMemoryAgentEventBus`` does, its ``archive_cursor`` kept as given) and
    stores it with its index row in one transaction (the caller's, inside a store's
    ``transaction()``). ``subscribe_filtered`` has the in-memory bus's rules, over the archive.
    """

    def __init__(self, archive: EventArchiveSurface) -> None:
        if not isinstance(archive, EventArchiveSurface):
            raise InvalidInput(f"archive: expected an event archive, got {type(archive).__name__}")
        self.archive = archive
        self._db: Any = archive._db
        self._sql = archive._sql
        self._db.create("runtime")

    def publish(self, frame: EventFrame) -> None:
        """Archive ``frame``, numbered with the archive's next ``seq``."""
        if not isinstance(frame, EventFrame):
            raise InvalidInput(f"frame: expected EventFrame, got {type(frame).__name__}")
        sql = self._sql

        def append(run: Run) -> None:
            seq = self._db.next_archive_seq(run)
            stored = _with_cursor(frame, frame.cursor.scope, seq)
            envelope = stored.event.envelope
            frame_row = (seq, envelope.event_id, wire.encode(stored))
            index_row = (envelope.run_id, envelope.event_kind.value)
            if sql.ARCHIVE_INSERT_INDEXED is not None:
                run(sql.ARCHIVE_INSERT_INDEXED, frame_row + index_row)
            else:
                run(sql.ARCHIVE_INSERT, frame_row)
                run(sql.EVENT_INDEX_INSERT, (seq, *index_row))

        self._db.write(append)

    def subscribe_filtered(
        self, filter: CompiledEventFilter, cursor: EventCursor | None = None
    ) -> Iterator[EventFrame]:
        """The archived frames ``filter`` matches after ``cursor``, bounded by ``filter.queue``; a
        ``cursor`` before a frame pruned from the archive (``prune``) raises, naming it."""
        scope = cursor_scope(filter)
        _compatible(scope, cursor)
        _check_queue(filter)
        criteria = filter.criteria
        after = 0 if cursor is None else cursor.event_seq
        matched = [
            _with_cursor(frame, scope, seq)
            for seq, frame in self._scan(self._sql.ARCHIVE_BATCH, (), after)
            if envelope_matches(criteria, frame.event.envelope)
        ]
        if cursor is not None:  # checked after the scan: a prune meanwhile shows
            _check_kept(self._db.rows(self._sql.ARCHIVE_FIRST)[0][0], after)
        return iter(_bounded(matched, filter.queue))

    def first_match(self, filter: CompiledEventFilter) -> EventFrame | None:
        """The earliest archived frame ``filter`` matches (its cursor scoped to it), or ``None``.

        Looked up by the filter's kinds when it names some, else by its runs, else scanned
        from the start (stopping at the first match). Unlike Rust's scan, the filter's queue
        plays no part (fastpool need not copy that limit of the Rust coordinator).
        """
        _check_queue(filter)
        criteria = filter.criteria
        sql = self._sql
        lookups: list[tuple[str, tuple[str, ...]]]
        if isinstance(criteria.kinds, tuple):
            lookups = [(sql.ARCHIVE_BY_KIND, (kind.value,)) for kind in criteria.kinds]
        elif isinstance(criteria.run_ids, tuple):
            lookups = [(sql.ARCHIVE_BY_RUN, (run_id,)) for run_id in criteria.run_ids]
        else:
            lookups = [(sql.ARCHIVE_BATCH, ())]
        best: tuple[int, EventFrame] | None = None
        for statement, key in lookups:
            for seq, frame in self._scan(statement, key, 0):
                if best is not None and seq >= best[0]:
                    break  # an earlier match was found under another key
                if envelope_matches(criteria, frame.event.envelope):
                    best = (seq, frame)
                    break
        return None if best is None else _with_cursor(best[1], cursor_scope(filter), best[0])

    def _scan(self, statement: str, key: tuple[str, ...], after: int) -> Iterator[tuple[int, EventFrame]]:
        """``(seq, frame)`` of ``statement``'s rows after ``after``, read a batch at a time."""
        while True:
            rows = self._db.rows(statement, (*key, after, _BATCH))
            for seq, text in rows:
                yield seq, decode_stored(EventFrame, text)
            if len(rows) < _BATCH:
                return
            after = rows[-1][0]

    @property
    def frames(self) -> list[EventFrame]:
        """Every archived frame, in archive order."""
        return [frame for _, frame in self._scan(self._sql.ARCHIVE_BATCH, (), 0)]

    def close(self) -> None:
        """Close the archive's connection (when it owns one)."""
        self.archive.close()

    def __repr__(self) -> str:
        return f"ArchiveEventBus({self.archive!r})"


def _check_kept(first: int, after: int) -> None:
    """A subscription after ``after`` misses no frame: the oldest kept, ``first``, follows it
    (the archive numbers frames without gaps, and a prune keeps the newest)."""
    if first > after + 1:
        raise AgentError(
            AgentErrorKind.INVALID_STATE_TRANSITION,
            RetryClassification.NOT_RETRYABLE,
            f"event cursor {after} stands before frames that were pruned from the event archive (its oldest is "
            f"{first}): subscribe again without a cursor (from the oldest frame kept) or from a later one",
            ids={"event_seq": str(after)},
        )


def _check_queue(filter: CompiledEventFilter) -> None:
    if filter.queue.overflow is SubscriberOverflowPolicy.BACKPRESSURE_CALLER:
        raise AgentError.contract_violation(BACKPRESSURE_REJECTED)
