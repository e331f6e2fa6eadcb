"""The ``fastpool`` command line; also ``python -m fastpool``.

JSON output is ``fastpool.wire``'s; errors print one line on stderr and exit non-zero,
never a traceback; progress goes to stderr, and only on a terminal. The read commands are
inspection tools: they show every record in the file, also those of a pool that was never
opened (the Rust store appends ``pool_created`` to any pool), which the store's reads hide
(as the contract sorts), and they stream, so memory stays flat whatever the file's size.

Every ``DB`` is any target ``open_store`` opens: a path or ``sqlite:///path``,
``postgresql://…`` (``--schema``, default public), and for ``demo`` also ``memory:``. The
commands go through the same store primitives on both backends (``_stream_rows``,
``_unopened_pools``, ``_event_sequence``, ``_append_rows``); reads open ``readonly=True``.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import orjson

from . import __version__, wire
from ._base import Row
from ._compat import USE_EXTENSIONS
from ._env import no_extensions_set
from ._open import backend_of
from .enums import AgentErrorKind, MessageStatus, RetryClassification, WakeRegistrationStatus
from .errors import AgentError, InvalidInput
from .model import AgentPoolSnapshot, AgentPoolStoreRecord
from .postgres import PostgresAgentPoolStore
from .sqlite import SqliteAgentPoolStore
from .surfaces._sql import TABLES

Store = SqliteAgentPoolStore | PostgresAgentPoolStore

_FOLLOW_POLL = 0.1  # seconds between checks for new records in watch --follow
_FILE_CHECK = 1.0  # seconds without records after which watch --follow checks its file is still there
_KINDS = ("pool_opened", "pool_created", "member_joined", "member_left", "run_message", "wake")
_STATUSES = tuple(dict.fromkeys(status.value for status in (*MessageStatus, *WakeRegistrationStatus)))
_LISTED = 20  # members or topics named in inspect's summary; the rest are counted


def _progress(label: str) -> Callable[[int, int], None] | None:
    if not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        end = "\n" if done >= total else ""
        print(f"\r{label}: {done:,}/{total:,}", end=end, file=sys.stderr, flush=True)

    return show


def _shown(target: str) -> str:
    """The target as messages name it: a PostgreSQL URL without its password."""
    if backend_of(target)[0] != "postgres":
        return target
    parts = urlsplit(target)
    netloc = parts.netloc
    if parts.password is not None:
        netloc = f"{parts.username or ''}:***@{netloc.rpartition('@')[2]}"
    query = urlencode([(key, "***" if key == "password" else value) for key, value in parse_qsl(parts.query)])
    return parts._replace(netloc=netloc, query=query).geturl()


def _target(target: str, schema: str | None, *, memory: bool = False) -> tuple[str, str]:
    """``open_store``'s reading of ``target`` (backend, location), with the CLI's refusals."""
    backend, location = backend_of(target)
    if backend == "memory" and not memory:
        raise InvalidInput("memory: starts empty and is gone when the command ends: only demo takes it")
    if schema is not None and backend != "postgres":
        raise InvalidInput(f"--schema: only a postgresql:// store has schemas, not {_shown(target)}")
    return backend, location


def _open(target: str, schema: str | None, *, readonly: bool) -> Store:
    """The store ``target`` names; a read command (``readonly``) never creates or changes one."""
    backend, location = _target(target, schema)
    if backend == "postgres":
        return PostgresAgentPoolStore(location, schema=schema or "public", readonly=readonly)
    if readonly and not Path(location).is_file():
        raise InvalidInput(f"{target}: no such database file")
    return SqliteAgentPoolStore(location, readonly=readonly)


def _require_records(store: Store, target: str, pool_id: str) -> None:
    """A misspelt pool name fails, instead of printing nothing (or, with --follow, waiting forever)."""
    with closing(store._stream_rows(pool_id)) as rows:
        if next(rows, None) is None:
            raise InvalidInput(f"{_shown(target)}: no records of pool {pool_id!r}")


def _write_line(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.write("\n")


def _demo(args: argparse.Namespace) -> int:
    from . import demo

    if args.db is None:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "demo.sqlite"
            print(f"fastpool demo on {path} (temporary; pass a path to keep it)")
            demo.run(path, agents=args.agents, messages=args.messages)
    else:
        _target(args.db, args.schema, memory=True)
        print(f"fastpool demo on {_shown(args.db)}")
        options = {} if args.schema is None else {"schema": args.schema}
        demo.run(args.db, agents=args.agents, messages=args.messages, **options)
    return 0


def _inspect(args: argparse.Namespace) -> int:
    if args.json and args.pool is None:
        raise InvalidInput("--json: prints one pool's whole state: name the POOL")
    with _open(args.db, args.schema, readonly=True) as store:
        if args.pool is not None:
            snapshot = store.snapshot(args.pool)
            lines = [wire.encode(snapshot)] if args.json else _summary(store, snapshot, _shown(args.db))
            for line in lines:
                _write_line(line)
            return 0
        pools = store.pools()
        unopened = store._unopened_pools()
        width = max([len("pool"), *(len(pool_id) for pool_id, _, _ in pools)])
        _write_line(f"{'pool':<{width}}  {'records':>8}  {'cursor':>8}")
        for pool_id, count, last in pools:
            mark = "  never opened" if pool_id in unopened else ""
            _write_line(f"{pool_id:<{width}}  {count:>8}  {last:>8}{mark}")
        _write_line(f"{len(pools)} pool{'' if len(pools) == 1 else 's'}")
    _inspect_surfaces(args)
    return 0


def _summary(store: Store, snapshot: AgentPoolSnapshot, where: str) -> Iterator[str]:
    """What a person reads of a pool: its extent, records by kind, messages and wakes by status,
    members and topics; the records are counted as stored (streamed), up to the snapshot's cursor."""
    pool_id = snapshot.pool_id
    last = snapshot.cursor.sequence if snapshot.cursor is not None else 0
    kinds: Counter[str] = Counter()
    size = 0
    with closing(store._stream_rows(pool_id)) as rows:
        for sequence, kind, text in rows:
            if sequence > last:
                break
            kinds[kind] += 1
            size += 0 if text is None else len(text.encode("utf-8"))
    events = store._event_sequence(pool_id)
    yield f"pool {pool_id!r} in {where}"
    yield (
        f"  cursor {last}, {_count(kinds.total(), 'record')} ({_bytes(size)} of JSON), "
        f"event sequence {'none' if events is None else events}, {'created' if snapshot.created else 'not created'}"
    )
    yield "  records:  " + (", ".join(f"{kind} {kinds[kind]}" for kind in sorted(kinds)) or "none")
    yield "  messages: " + _by_status(stored.receipt.status.value for stored in snapshot.messages)
    yield "  wakes:    " + _by_status(stored.registration.status.value for stored in snapshot.wakes)
    yield "  members:  " + _listed([f"{member.run_id} ({member.agent_id})" for member in snapshot.members])
    yield "  topics:   " + _listed(list(snapshot.topics))


def _count(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _bytes(size: int) -> str:
    if size < 1000:
        return f"{size} bytes"
    return f"{size / 1000:.1f} kB" if size < 1_000_000 else f"{size / 1_000_000:.1f} MB"


def _by_status(statuses: Iterable[str]) -> str:
    counted = Counter(statuses)
    if not counted:
        return "0"
    return f"{counted.total()} (" + ", ".join(f"{status} {counted[status]}" for status in sorted(counted)) + ")"


def _listed(names: list[str]) -> str:
    if not names:
        return "0"
    more = f", and {len(names) - _LISTED} more" if len(names) > _LISTED else ""
    return f"{len(names)}: " + ", ".join(names[:_LISTED]) + more


def _record_filter(args: argparse.Namespace) -> Callable[[AgentPoolStoreRecord], bool]:
    """watch's and export's ``--type``, ``--run`` and ``--status``: a record is printed if it passes all given."""
    kinds, run, statuses = set(args.type or ()), args.run, set(args.status or ())

    def passes(record: AgentPoolStoreRecord) -> bool:
        payload = record.payload
        if kinds and payload.TYPE not in kinds:
            return False
        if run is not None and run not in _runs_of(payload):
            return False
        return not statuses or _status_of(payload) in statuses

    return passes


def _runs_of(payload: object) -> set[str]:
    """The runs a record is about: a member's run; a message's sender, addressee and recipients; a wake's run."""
    member = getattr(payload, "member", None)
    if member is not None:
        return {member.run_id}
    stored = getattr(payload, "stored", None)
    message = getattr(stored, "message", None)
    if message is not None:
        addressed = getattr(message.to.target, "run_id", None)
        return {message.from_, *stored.receipt.delivered_to, *([addressed] if addressed else [])}  # type: ignore[union-attr]
    condition = getattr(stored, "condition", None)
    return set() if condition is None else {condition.run_id}


def _status_of(payload: object) -> str | None:
    stored = getattr(payload, "stored", None)
    receipt = getattr(stored, "receipt", None) or getattr(stored, "registration", None)
    return None if receipt is None else str(receipt.status.value)


def _inspect_surfaces(args: argparse.Namespace) -> None:
    """After the pools: the Rust crate's other tables on the same database, if it has any."""
    from .surfaces._inventory import table_rows

    backend, location = _target(args.db, args.schema)
    tables = table_rows(backend, location, args.schema or "public")
    if not tables:
        return
    width = max(len(table) for table, _ in tables)
    _write_line(f"{'table':<{width}}  {'rows':>8}")
    for table, rows in tables:
        _write_line(f"{table:<{width}}  {rows:>8}")
    _write_line(f"{len(tables)} other table{'' if len(tables) == 1 else 's'}")


def _watch(args: argparse.Namespace) -> int:
    backend, location = _target(args.db, args.schema)
    held = None  # a descriptor of the file: its inode number cannot be reused while it is open
    try:
        with _open(args.db, args.schema, readonly=True) as store:
            if backend == "sqlite":
                held = os.open(location, os.O_RDONLY)
            _require_records(store, args.db, args.pool)
            after = args.from_
            passes = _record_filter(args)
            with closing(store._stream(args.pool, after)) as records:  # closed before the store
                for record in records:
                    if passes(record):
                        _write_line(wire.encode(record))
                    after = record.cursor.sequence
            while args.follow:
                sys.stdout.flush()
                # Back here after each quiet spell: a file deleted underneath (its open inode
                # is still readable) or replaced would never show another record.
                for record in store._follow(args.pool, after, _FOLLOW_POLL, _FILE_CHECK, every_record=True):
                    if passes(record):
                        _write_line(wire.encode(record))
                        sys.stdout.flush()
                    after = record.cursor.sequence
                if held is not None and not _still_there(location, held):
                    raise AgentError.host_configuration_needed(
                        f"{args.db}: the database file was deleted or replaced while watching it"
                    )
    finally:
        if held is not None:
            os.close(held)  # after the store: closing it drops this process's SQLite locks on the file
    return 0


def _still_there(path: str, held: int) -> bool:
    """Whether ``path`` still names the file open as ``held``."""
    opened = os.fstat(held)
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return False
    return opened.st_nlink > 0 and (now.st_dev, now.st_ino) == (opened.st_dev, opened.st_ino)


def _export(args: argparse.Namespace) -> int:
    # The surfaces' rows come after the pools', unless a pool or a record filter was asked for.
    filtered = args.pool is not None or args.type or args.run is not None or args.status
    with _open(args.db, args.schema, readonly=True) as store:
        if args.pool is not None:
            _require_records(store, args.db, args.pool)
        if args.table and args.pool is None:
            pools = []
        else:
            pools = [args.pool] if args.pool is not None else [pool_id for pool_id, _, _ in store.pools()]
        passes = _record_filter(args)
        for pool_id in pools:
            with closing(store._stream(pool_id)) as records:
                for record in records:
                    if passes(record):
                        _write_line(wire.encode(record))
    if args.table or not filtered:
        _export_tables(args, args.table or [])
    return 0


def _export_tables(args: argparse.Namespace, named: list[str]) -> None:
    """Each surface table's rows (all tables present, or those ``named``), one JSON line a row:
    ``{"table": …, "columns": {…}}``, every column as stored, a BLOB as lowercase hex."""
    from .surfaces._tables import open_source

    backend, location = _target(args.db, args.schema)
    with open_source(backend, location, args.schema or "public") as source:
        tables = source.tables()
        missing = [name for name in dict.fromkeys(named) if name not in {table.name for table in tables}]
        if missing:
            raise InvalidInput(f"{_shown(args.db)}: no table {missing[0]!r}")
        for table in tables:
            if named and table.name not in named:
                continue
            for row in source.rows(table):
                columns = {
                    name: value.hex() if isinstance(value, bytes) else value for name, value in zip(table.columns, row)
                }
                _write_line(orjson.dumps({"table": table.name, "columns": columns}).decode("utf-8"))


def _verify(args: argparse.Namespace) -> int:
    from .verify import NO_INTEGRITY_CHECK, verify, verify_store

    backend, location = _target(args.db, args.schema)
    if backend == "postgres":
        with _open(args.db, args.schema, readonly=True) as store:
            report = verify_store(store, progress=_progress("verify"))
    else:
        report = verify(location, progress=_progress("verify"))
    for problem in report.problems or ():
        _write_line(str(problem))
    if backend == "postgres":
        _write_line(NO_INTEGRITY_CHECK)
    count = len(report.problems or ())
    _write_line(f"{_count(report.pools, 'pool')}, {_count(report.records, 'record')}: {_verdict(count)}")
    return 0 if report.clean and _verify_tables(backend, location, args.schema or "public") else 1


def _verdict(problems: int) -> str:
    return "clean" if not problems else f"{problems} problem{'s' if problems > 1 else ''}"


def _verify_tables(backend: str, location: str, schema: str) -> bool:
    """Decode every row of the surfaces' tables as their surface reads it; print each bad row and
    a summary line (nothing if there are no such tables). Whether every row was good."""
    from .surfaces._tables import open_source, row_problems

    problems = rows = 0
    with open_source(backend, location, schema) as source:
        tables = source.tables()
        for table in tables:
            for row in source.rows(table):
                rows += 1
                for problem in row_problems(table, row):
                    problems += 1
                    _write_line(f"table {table.name} ({table.shown_key(row)}): {problem}")
    if tables:
        _write_line(f"{_count(len(tables), 'other table')}, {_count(rows, 'row')}: {_verdict(problems)}")
    return problems == 0


def _copy(args: argparse.Namespace) -> int:
    source_name, target_name = _shown(args.src), _shown(args.dst)
    _target(args.dst, args.dst_schema)  # a wrong DST fails before anything is read
    with _open(args.src, args.src_schema, readonly=True) as source:
        listed = source.pools()
        if args.pool is not None:
            listed = [row for row in listed if row[0] == args.pool]
            if not listed:
                raise InvalidInput(f"{source_name}: no records of pool {args.pool!r}")
        with _open(args.dst, args.dst_schema, readonly=False) as target:  # created only now
            if args.pool is not None:
                _copy_pools(source, target, listed, source_name, target_name, resume=args.resume)
            else:
                with _surface_copy(args, source_name, target_name) as tables:
                    tables(False)  # a row DST has otherwise is refused before anything is written
                    _copy_pools(source, target, listed, source_name, target_name, resume=args.resume)
                    tables(True)
    return 0


@contextmanager
def _surface_copy(args: argparse.Namespace, source_name: str, target_name: str) -> Iterator[Callable[[bool], None]]:
    """``copy(write)``: check (``False``) or copy (``True``) SRC's surface tables into DST, rows
    byte for byte, a row DST has equal skipped, one it has otherwise refused."""
    from .surfaces._base import Database
    from .surfaces._tables import copy_tables, open_source

    src_backend, src_location = _target(args.src, args.src_schema)
    dst_backend, dst_location = _target(args.dst, args.dst_schema)
    with open_source(src_backend, src_location, args.src_schema or "public") as source:
        if not source.tables():
            yield lambda write: None
            return
        target: Database
        if dst_backend == "postgres":
            from .surfaces._pg_db import PgSurfaceDb

            target = PgSurfaceDb.open(dst_location, schema=args.dst_schema or "public")
        else:
            from .surfaces import SurfaceDb

            target = SurfaceDb.open(dst_location)
        try:

            def copy(write: bool) -> None:
                done = copy_tables(source, target, dst_backend, source_name, target_name, write=write)
                for table, copied, there in done if write else ():
                    _write_line(f"table {table.name}: {_count(copied, 'row')} copied ({there} already there)")

            yield copy
        finally:
            target.close()


def _copy_pools(
    source: Store,
    target: Store,
    listed: list[tuple[str, int, int]],
    source_name: str,
    target_name: str,
    *,
    resume: bool = False,
) -> None:
    """Copy the ``listed`` pools (id, count, last cursor), each in one transaction of ``target``;
    ``resume``: skip those ``target`` has whole and equal, refuse one it has otherwise."""
    there = {pool_id for pool_id, _, _ in target.pools()}
    clash = [pool_id for pool_id, _, _ in listed if pool_id in there]
    if clash and not resume:
        pools = f"pool {clash[0]!r}" if len(clash) == 1 else f"{len(clash)} of the pools ({_some(clash)})"
        raise InvalidInput(
            f"{target_name} already has {pools}: copy never writes into an existing pool; nothing was copied "
            "(after an interrupted copy, --resume copies the rest)"
        )
    # Every pool there is compared before anything is written: a refusal copies nothing.
    for pool_id, _, last in listed:
        if pool_id in there and not _same_pool(source, target, pool_id, last):
            raise InvalidInput(
                f"{target_name} already has pool {pool_id!r} and it differs from {source_name}'s "
                f"(up to cursor {last}): --resume only skips a pool copied whole; nothing was copied"
            )
    skipped = [row for row in listed if row[0] in there]
    for pool_id, _, last in skipped:
        _write_line(f"pool {pool_id!r}: already at {target_name}, equal up to cursor {last}: skipped")
    listed = [row for row in listed if row[0] not in there]
    progress = _progress("copy")
    total, done = sum(count for _, count, _ in listed), 0

    def copied() -> None:
        nonlocal done
        done += 1
        if progress is not None and (done % 10_000 == 0 or done == total):
            progress(done, total)

    for pool_id, count, last in listed:
        expected = (count, last, source._event_sequence(pool_id))
        with closing(source._stream_rows(pool_id)) as rows:
            # Up to the cursor listed: a record appended since is not part of this copy.
            found = target._append_rows(pool_id, _as_stored(pool_id, rows, last, copied), expected[2])
        if found != expected:
            raise AgentError(
                AgentErrorKind.INVALID_STATE_TRANSITION,
                RetryClassification.REPAIR_NEEDED,
                f"pool {pool_id!r} was copied, but {target_name} now holds {_extent(found)} "
                f"where {source_name} holds {_extent(expected)}",
            )
        _write_line(f"pool {pool_id!r}: {_extent(found)}: copied and verified")
    into = f"{target_name} (schema {target.schema})" if isinstance(target, PostgresAgentPoolStore) else target_name
    done_line = f"{len(listed)} pool{'' if len(listed) == 1 else 's'} copied from {source_name} to {into}"
    _write_line(f"{done_line} ({len(skipped)} already there)" if resume else done_line)


def _some(pool_ids: list[str]) -> str:
    """The first few ids, for a message that stays one short line."""
    shown = ", ".join(map(repr, pool_ids[:3]))
    return shown + ", ..." if len(pool_ids) > 3 else shown


def _same_pool(source: Store, target: Store, pool_id: str, last: int) -> bool:
    """Whether ``target`` holds exactly ``source``'s rows of the pool up to ``last`` (sequence,
    kind, payload text) and the same event sequence: a pool an earlier copy wrote whole."""
    if source._event_sequence(pool_id) != target._event_sequence(pool_id):
        return False
    with closing(source._stream_rows(pool_id)) as ours, closing(target._stream_rows(pool_id)) as theirs:
        copied = itertools.takewhile(lambda row: row[0] <= last, ours)
        return all(mine == found for mine, found in itertools.zip_longest(copied, theirs))


def _as_stored(pool_id: str, rows: Iterator[Row], last: int, copied: Callable[[], None]) -> Iterator[Row]:
    """The rows up to ``last``; a payload that is not text (a corrupt record) stops the copy of the pool."""
    for row in rows:
        if row[0] > last:
            return
        if row[2] is None:
            raise AgentError(
                AgentErrorKind.INVALID_STATE_TRANSITION,
                RetryClassification.REPAIR_NEEDED,
                f"pool {pool_id!r} record {row[0]}: payload_json is not text (fastpool verify lists such records); "
                "nothing of this pool was copied",
            )
        yield row
        copied()


def _extent(extent: tuple[int, int, int | None]) -> str:
    count, last, events = extent
    sequence = "none" if events is None else str(events)
    return f"{count} record{'' if count == 1 else 's'}, cursor {last}, event sequence {sequence}"


def _drop(args: argparse.Namespace) -> int:
    backend, location = _target(args.db, args.schema)
    if backend == "sqlite" and not Path(location).is_file():
        raise InvalidInput(f"{args.db}: no such database file")  # drop never creates a file
    with _open(args.db, args.schema, readonly=False) as store:
        removed = store.delete_pool(args.pool)
    if removed == (0, 0, None):
        raise InvalidInput(f"{_shown(args.db)}: no records of pool {args.pool!r}; nothing was dropped")
    _write_line(f"pool {args.pool!r}: {_extent(removed)}: dropped from {_shown(args.db)}")
    return 0


def _prune(args: argparse.Namespace) -> int:
    from .surfaces import PostgresEventArchive, PostgresRunJournal, SqliteEventArchive, SqliteRunJournal
    from .surfaces._base import Surface
    from .surfaces._inventory import table_rows

    backend, location = _target(args.db, args.schema)
    if backend == "sqlite" and not Path(location).is_file():
        raise InvalidInput(f"{args.db}: no such database file")  # prune never creates a file
    journal = args.what == "journal"
    if args.run is not None and not journal:
        raise InvalidInput("--run: only the journal's records belong to runs")
    table = "run_journal_records" if journal else "event_archive_frames"
    if table not in {name for name, _ in table_rows(backend, location, args.schema or "public")}:
        raise InvalidInput(f"{_shown(args.db)}: no table {table}: nothing to prune")
    surface: Surface
    if backend == "postgres":
        kind = PostgresRunJournal if journal else PostgresEventArchive
        surface = kind.open(location, schema=args.schema or "public")
    else:
        surface = (SqliteRunJournal if journal else SqliteEventArchive).open(location)
    limits = {"before_seq": args.before_seq, "keep_last": args.keep_last}
    with surface:
        if isinstance(surface, (SqliteRunJournal, PostgresRunJournal)):
            pruned = surface.prune(args.run, **limits)
        else:
            assert isinstance(surface, (SqliteEventArchive, PostgresEventArchive))
            pruned = surface.prune(**limits)
    noun, kept = ("record", "each run keeps its newest") if journal else ("frame", "the newest is kept")
    _write_line(f"{table}: {_count(pruned, noun)} pruned from {_shown(args.db)} ({kept})")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from .benchmarking.runner import main as bench_main

    return bench_main(args)


def _at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number >= ``minimum``, else a usage error (exit 2) naming the argument."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {text!r}")
        return value

    return parse


def _version() -> str:
    if USE_EXTENSIONS:
        engine = "compiled engine: fastpool._replay"
    elif no_extensions_set():
        engine = "pure-Python engine: fastpool._replay_py, forced by FASTPOOL_NO_EXTENSIONS"
    else:
        engine = "pure-Python engine: fastpool._replay_py; the compiled engine is not installed"
    return f"fastpool {__version__} ({engine})"


def build_parser() -> argparse.ArgumentParser:
    # Raw description: argparse would wrap the --version line (it formats it as a description).
    parser = argparse.ArgumentParser(
        prog="fastpool",
        description="A fast, durable agent-pool store on SQLite (one machine) or PostgreSQL (several).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=_version(), help="print the version and engine")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    bench = commands.add_parser("bench", help="measure the performance targets side by side with the baseline")
    bench.add_argument("--quick", action="store_true", help="smaller pools and fewer rounds (under a minute)")
    bench.add_argument("--sizes", type=_at_least(0), nargs="+", metavar="N", help="pool sizes (default 0 10000 100000)")
    bench.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    bench.add_argument(
        "--plot", metavar="FILE.png", help="also plot cost per call against pool size (needs matplotlib)"
    )
    bench.add_argument("--db", metavar="URL", help="measure the PostgreSQL targets (T12) on this postgresql:// server")
    bench.set_defaults(handler=_bench)

    demo = commands.add_parser("demo", help="run a realistic agent-host workload on a store")
    demo.add_argument("db", nargs="?", help="file, sqlite:///, postgresql:// or memory: (default: a temporary file)")
    _schema_option(demo)
    demo.add_argument("--agents", type=_at_least(1), default=12, help="agent runs that join the pool (default 12)")
    demo.add_argument("--messages", type=_at_least(0), default=600, help="messages to send (default 600)")
    demo.set_defaults(handler=_demo)

    inspect = commands.add_parser(
        "inspect", help="list pools (and the other stores' tables), or summarise one pool (--json: its whole state)"
    )
    _db_argument(inspect)
    inspect.add_argument("pool", nargs="?", help="the pool to summarise (default: list every pool)")
    inspect.add_argument("--json", action="store_true", help="print the pool's snapshot as one JSON line")
    _schema_option(inspect)
    inspect.set_defaults(handler=_inspect)

    watch = commands.add_parser("watch", help="print a pool's records as JSON lines")
    _db_argument(watch)
    watch.add_argument("pool", help="the pool whose records to print")
    watch.add_argument("--from", dest="from_", type=_at_least(0), default=0, metavar="N", help="records after N")
    watch.add_argument("--follow", action="store_true", help="keep printing records appended later")
    _filter_options(watch)
    _schema_option(watch)
    watch.set_defaults(handler=_watch)

    verify = commands.add_parser(
        "verify", help="check the file, every record and the other stores' rows; exit 1 if anything is wrong"
    )
    _db_argument(verify)
    _schema_option(verify)
    verify.set_defaults(handler=_verify)

    export = commands.add_parser(
        "export", help="print records as JSON lines (pool, cursor, payload), then the other stores' rows"
    )
    _db_argument(export)
    export.add_argument("--pool", help="this pool's records only (default: every pool's)")
    export.add_argument(
        "--table",
        action="append",
        choices=TABLES,
        help="this table of the other stores only, its rows as {table, columns} lines (repeatable)",
    )
    _filter_options(export)
    _schema_option(export)
    export.set_defaults(handler=_export)

    copy = commands.add_parser(
        "copy", help="copy pools and the other stores' tables between stores byte for byte (SQLite, PostgreSQL)"
    )
    copy.add_argument("src", help="the store to copy from: a file, sqlite:///path or postgresql://")
    copy.add_argument(
        "dst", help="the store to copy to, created if missing; a pool it already has is never written into"
    )
    copy.add_argument("--pool", help="copy this pool only")
    copy.add_argument(
        "--resume",
        action="store_true",
        help="finish an interrupted copy: skip pools DST has equal to SRC's, still refuse one that differs",
    )
    copy.add_argument("--src-schema", metavar="NAME", help="SRC's schema, if it is postgresql:// (default public)")
    copy.add_argument("--dst-schema", metavar="NAME", help="DST's schema, if it is postgresql:// (default public)")
    copy.set_defaults(handler=_copy)

    drop = commands.add_parser("drop", help="delete one pool (records, index entries, event sequence); asks nothing")
    _db_argument(drop)
    drop.add_argument("pool", help="the pool to delete")
    _schema_option(drop)
    drop.set_defaults(handler=_drop)

    prune = commands.add_parser(
        "prune", help="delete the run journal's or the event archive's old rows (keeps the newest); asks nothing"
    )
    _db_argument(prune)
    prune.add_argument("what", choices=("journal", "archive"), help="run_journal_records or event_archive_frames")
    limit = prune.add_mutually_exclusive_group(required=True)
    limit.add_argument("--keep-last", type=_at_least(1), metavar="N", help="keep the N newest (per run for journal)")
    limit.add_argument("--before-seq", type=_at_least(0), metavar="N", help="delete those numbered below N")
    prune.add_argument("--run", metavar="RUN_ID", help="journal: this run's records only (default: every run's)")
    _schema_option(prune)
    prune.set_defaults(handler=_prune)
    return parser


def _db_argument(command: argparse.ArgumentParser) -> None:
    command.add_argument("db", help="the store: a file, sqlite:///path or postgresql://… (see --schema)")


def _filter_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--type", action="append", choices=_KINDS, help="records of this kind (repeatable)")
    command.add_argument("--run", metavar="RUN_ID", help="records about this run (member, sender, recipient, wake)")
    command.add_argument(
        "--status", action="append", choices=_STATUSES, help="messages and wakes in this status (repeatable)"
    )


def _schema_option(command: argparse.ArgumentParser) -> None:
    command.add_argument("--schema", metavar="NAME", help="the schema of a postgresql:// DB (default public)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except AgentError as error:
        print(f"fastpool {args.command}: error: {error.detail}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        sys.stderr.close()  # the reader went away (e.g. `| head`): not an error
        return 0
    except OSError as error:
        print(f"fastpool {args.command}: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
