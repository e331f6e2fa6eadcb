"""The event archive: Rust's table ``event_archive_frames``, one global archive per database, its
``MAX(seq)+1`` and insert in one transaction; ``SqliteEventArchive`` and ``PostgresEventArchive``."""

from __future__ import annotations

import re

from .. import wire
from ..events import envelope_matches
from ..model import ArchiveCursor, CompiledEventFilter, EventFrame
from ._base import PostgresSurface, Run, SqliteSurface, Surface, integer
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
            seq = integer(run, sql.ARCHIVE_NEXT)
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


class SqliteEventArchive(EventArchiveSurface, SqliteSurface):
    """An event archive in an SQLite file, shared with Rust hosts (``EventArchiveSurface``)."""


class PostgresEventArchive(EventArchiveSurface, PostgresSurface):
    """An event archive in a PostgreSQL schema (``EventArchiveSurface``)."""
