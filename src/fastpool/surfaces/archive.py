"""The event archive: Rust's table ``event_archive_frames``, one global archive per database, its
``MAX(seq)+1`` and insert in one transaction; ``SqliteEventArchive`` and ``PostgresEventArchive``."""

from __future__ import annotations

import re

from .. import wire
from ..events import envelope_matches
from ..model import ArchiveCursor, CompiledEventFilter, EventFrame
from ._base import PostgresSurface, Run, SqliteSurface, Surface, integer, retention
from ._codec import decode_all

__all__ = ["EventArchiveSurface", "SqliteEventArchive", "PostgresEventArchive", "ARCHIVE_ID"]

#: The ``archive_id`` of the cursors the archive assigns.
ARCHIVE_ID = "archive.sqlite.default"
# Rust's i64 parser: an optional sign, ASCII digits, nothing else (no space, no "_").
_I64 = re.compile(r"[+-]?[0-9]+")


def _position(cursor: ArchiveCursor | None) -> int:
    """The seq a cursor stands after: ``archive.`` stripped once, then Rust's ``i64`` parse; 0
    (everything) when absent or unparsable."""
    if cursor is None:
        return 0
    text = cursor.position.removeprefix("archive.")
    if _I64.fullmatch(text) is None:
        return 0
    value = int(text)
    return value if -(2**63) <= value < 2**63 else 0


class EventArchiveSurface(Surface):
    """An ``EventArchive`` on a database (table ``event_archive_frames``).

    ``append_frame`` numbers frames ``MAX(seq)+1`` across every writer of the file and gives a
    frame without an ``archive_cursor`` ``archive.<seq>``; a caller's cursor is kept verbatim.
    """

    NAME = "archive"

    def append_frame(self, frame: EventFrame) -> ArchiveCursor:
        """Archive ``frame``; return its archive cursor (the caller's, or the one assigned)."""
        event_id = frame.event.envelope.event_id

        sql = self._sql

        def append(run: Run) -> ArchiveCursor:
            seq = self._db.next_archive_seq(run)
            cursor = frame.archive_cursor or ArchiveCursor(
                archive_id=ARCHIVE_ID, position=f"archive.{seq}", event_id=event_id
            )
            stored = frame.replace(archive_cursor=cursor)
            run(sql.ARCHIVE_INSERT, (seq, event_id, wire.encode(stored)))
            return cursor

        return self._db.write(append)

    def frames_after(self, cursor: ArchiveCursor | None) -> list[EventFrame]:
        """The frames stored after ``cursor``'s position (all for ``None`` or a position that does
        not parse), in archive order. Only the position counts, not the archive or event id."""
        return decode_all(EventFrame, self._db.rows(self._sql.ARCHIVE_AFTER, (_position(cursor),)))

    def replay_filtered_from_cursor(self, filter: CompiledEventFilter, cursor: ArchiveCursor) -> list[EventFrame]:
        """``frames_after(cursor)`` whose envelope ``filter``'s criteria match (Rust returns them as
        an ``AgentEventStream``)."""
        return [frame for frame in self.frames_after(cursor) if envelope_matches(filter.criteria, frame.event.envelope)]

    def prune(self, *, before_seq: int | None = None, keep_last: int | None = None) -> int:
        """Delete old frames (and their rows in fastpool's side table, if the database has it),
        in one transaction; return how many frames. Beyond the Rust crate, which has no delete.

        ``before_seq``: the frames whose ``seq`` is below it; ``keep_last``: all but the
        ``keep_last`` newest. Give exactly one. The newest frame is always kept, so frames
        appended later (by fastpool or a Rust host) go on from ``MAX(seq) + 1``: no cursor is
        ever given twice.

        Afterwards the frames are simply gone: ``frames_after`` returns those left (a Rust host
        reads the same). ``ArchiveEventBus`` refuses a subscription whose cursor stands before
        a pruned frame, and a wake matches only the frames left (docs/operations.md, "Retention").
        """
        keep, below = retention(before_seq, keep_last)
        sql = self._sql

        def prune(run: Run) -> int:
            newest = run(sql.ARCHIVE_NEWEST, (keep - 1,))
            if not newest:
                return 0  # no more than keep frames
            limit = newest[0][0] if below is None else min(below, newest[0][0])
            count = integer(run, sql.ARCHIVE_PRUNE_COUNT, (limit,))
            if count:
                run(sql.ARCHIVE_PRUNE, (limit,))
                if integer(run, sql.EVENT_INDEX_PRESENT):
                    run(sql.EVENT_INDEX_PRUNE, (limit,))
            return count

        return self._db.write(prune)


class SqliteEventArchive(EventArchiveSurface, SqliteSurface):
    """An event archive in an SQLite file, shared with Rust hosts (``EventArchiveSurface``)."""


class PostgresEventArchive(EventArchiveSurface, PostgresSurface):
    """An event archive in a PostgreSQL schema (``EventArchiveSurface``)."""
