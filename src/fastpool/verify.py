"""``fastpool verify``: check a database file (or a PostgreSQL schema) without changing it.

SQLite's ``PRAGMA integrity_check`` first, then every pool is decoded and replayed
record by record; a bad record is reported and skipped so that every one is listed, and so
is a pool that was never opened (records but no ``pool_opened``: the store's reads show
nothing of it). A file of a newer fastpool format is refused, as every command refuses it.
The point-read index (``_point_reads``) is checked against the records it covers.
PostgreSQL has no twin of the integrity check (its files are the server's to check, e.g. with
``amcheck``): ``verify_store`` decodes and replays every pool of a store opened read-only,
and checks the schema's key index (``bounded_state``) against the records it covers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import Any

import apsw

from . import _sql
from ._compat import engine
from ._point_reads import PointIndex, index_entries
from ._sqlite_errors import NAME, translate
from ._sqlite_file import check_path, check_schema_version, open_readonly
from .errors import AgentError, InvalidInput
from .postgres import PostgresAgentPoolStore
from .sqlite import SqliteAgentPoolStore

#: What ``fastpool verify`` says of a PostgreSQL store, where no integrity check precedes the replay.
NO_INTEGRITY_CHECK = (
    "note: PostgreSQL has no twin of SQLite's integrity check (the server's files are its own to check, "
    "e.g. with amcheck): the records were decoded and replayed only"
)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the file: a record (pool and sequence), a pool (``sequence`` None),
    or the file itself (``pool_id`` None)."""

    pool_id: str | None
    sequence: int | None
    reason: str

    def __str__(self) -> str:
        if self.pool_id is None:
            return f"file: {self.reason}"
        if self.sequence is None:
            return f"pool {self.pool_id!r}: {self.reason}"
        return f"pool {self.pool_id!r} record {self.sequence}: {self.reason}"


@dataclass
class Report:
    pools: int = 0
    records: int = 0
    problems: list[Problem] | None = None

    @property
    def clean(self) -> bool:
        return not self.problems


def verify(path: str | Path, progress: Callable[[int, int], None] | None = None) -> Report:
    """Check the file at ``path`` (opened read-only); ``progress(done, total)`` is called now and then."""
    check_path(path)
    if not Path(path).is_file():
        raise InvalidInput(f"{path}: no such database file")
    try:
        db, _ = open_readonly(path)  # as a readonly store opens it: no companion files left behind
    except apsw.Error as error:
        raise translate(error) from error
    report = Report(problems=[])
    assert report.problems is not None
    try:
        checks = [line for (line,) in db.execute("PRAGMA integrity_check")]
    except apsw.Error as error:  # not a database at all: one clear error, not a report
        db.close()
        raise translate(error) from error
    try:
        for line in checks:
            if line != "ok":
                report.problems.append(Problem(None, None, f"integrity check: {line}"))
        tables = {name for (name,) in db.execute(_sql.TABLES)}
        if "agent_pool_records" not in tables:
            report.problems.append(Problem(None, None, "no agent_pool_records table"))
            return report
        if "fastpool_meta" in tables:
            check_schema_version(db)  # the refusal of every store that opens the file
        total: int = db.execute(_sql.COUNT_ROWS).fetchall()[0][0]  # type: ignore[assignment]
        for problem in _replay_all(db.execute(_sql.ALL_ROWS), report, total, progress, NAME):
            report.problems.append(problem)
        if PointIndex.version_of(db, tables) == _sql.POINT_INDEX_VERSION:
            report.problems.extend(_check_point_index(db))
    except apsw.Error as error:
        report.problems.append(Problem(None, None, str(translate(error))))
    finally:
        db.close()
    return report


def verify_store(
    store: SqliteAgentPoolStore | PostgresAgentPoolStore, progress: Callable[[int, int], None] | None = None
) -> Report:
    """Decode and replay every pool of ``store`` (open it ``readonly=True``), as ``verify`` does a file's."""
    pools = store.pools()
    report = Report(problems=[])
    assert report.problems is not None
    rows = ((pool_id, *row) for pool_id, _, _ in pools for row in store._stream_rows(pool_id))
    report.problems.extend(_replay_all(rows, report, sum(count for _, count, _ in pools), progress, store._name))
    if isinstance(store, PostgresAgentPoolStore):
        for pool_id, mark, wrong in store._point_index_differences():
            detail = f"{wrong} entries" if isinstance(wrong, int) else f"a check that failed: {wrong}"
            report.problems.append(
                Problem(
                    pool_id,
                    None,
                    f"key index (bounded_state) differs from the records up to {mark} in {detail} "
                    "(stop the bounded_state hosts and delete the pool's rows of fastpool_point_keys and "
                    "fastpool_point_marks: they index it anew)",
                )
            )
    return report


def _replay_all(
    all_rows: Iterable[tuple[Any, ...]],  # (pool_id, seq, kind, payload_json: None where not text)
    report: Report,
    total: int,
    progress: Callable[[int, int], None] | None,
    store_name: str,  # how the replay's errors name the store
) -> Iterator[Problem]:
    for pool_id, rows in groupby(all_rows, key=itemgetter(0)):
        state = engine.PoolState(pool_id, store_name)
        report.pools += 1
        count = expected = 0
        opened = False  # by the kind column, so that a corrupt pool_opened is reported once, as corrupt
        for _, sequence, kind, text in rows:
            report.records += 1
            if progress is not None and report.records % 10_000 == 0:
                progress(report.records, total)
            count += 1
            opened = opened or kind == "pool_opened"
            expected += 1
            if sequence != expected:
                yield Problem(pool_id, sequence, f"sequence gap: expected {expected}")
                expected = sequence
            try:
                payload = engine.decode_row(kind, text)  # the stores' own check of a row
            except InvalidInput as error:
                yield Problem(pool_id, sequence, error.message)
                continue
            try:
                state.apply(payload, sequence)
            except AgentError as error:
                yield Problem(pool_id, sequence, error.message)
        if not opened:
            records = f"{count} record{'s' if count > 1 else ''}"
            yield Problem(pool_id, None, f"never opened: {records} and no pool_opened among them")
    if progress is not None:
        progress(report.records, total)


def _check_point_index(db: apsw.Connection) -> Iterator[Problem]:
    """Each pool's point-read index against the entries its records up to the mark give."""
    for pool_id, mark in db.execute(_sql.POINT_MARKS).fetchall():
        expected: dict[tuple[int, str], int] = {}
        for sequence, kind, text in db.execute(_sql.ROWS_AFTER, (pool_id, 0)):
            if sequence > mark:
                break
            try:
                payload = engine.decode_row(kind, text)
            except InvalidInput:
                continue  # reported by the replay
            for entry in index_entries(payload, sequence):
                expected[entry] = sequence
        found = {(kind, key): seq for kind, key, seq in db.execute(_sql.POINT_KEYS_OF_POOL, (pool_id,))}
        wrong = sum(1 for entry in expected.keys() | found.keys() if expected.get(entry) != found.get(entry))
        if wrong:
            yield Problem(
                str(pool_id),
                None,
                f"point-read index differs from the records up to {mark} in {wrong} entries "
                "(drop the fastpool_point_keys table: the next read-write open starts it anew)",
            )
