"""Opening an SQLite store's file: the path check, the pragmas, the tables of a new file, and the
read-only and immutable modes a ``readonly=True`` store (and ``fastpool verify``) opens a file in."""

from __future__ import annotations

import os
from pathlib import Path

import apsw

from . import _sql
from ._point_reads import PointIndex
from ._sql import SCHEMA_VERSION
from ._sqlite_write import BusyWait, Write
from .enums import AgentErrorKind, RetryClassification
from .errors import AgentError, InvalidInput

__all__ = ["SYNCHRONOUS", "Unchanged", "check_path", "check_schema_version", "configure", "enable_wal", "open_readonly"]

SYNCHRONOUS = {"normal": 1, "full": 2}  # PRAGMA synchronous's levels


def check_path(path: str | os.PathLike[str]) -> None:
    """A path SQLite can open: text without NUL that encodes as UTF-8 (SQLite's file names are
    UTF-8, so a lone surrogate, as ``os.fsdecode`` gives for undecodable bytes, is refused)."""
    text = os.fspath(path)
    if not isinstance(text, str):
        raise InvalidInput(f"path: expected a text path, got {type(text).__name__}")
    if "\0" in text:
        raise InvalidInput(f"path: contains a NUL character: {text!r}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(
            f"path: not valid Unicode text (a lone surrogate), which SQLite cannot open: {text!r}"
        ) from None


def enable_wal(db: apsw.Connection, busy_timeout: float) -> None:
    """Put the file in WAL mode (a read-only file keeps the mode it is in)."""
    # One pragma per call: APSW stops a multi-statement execute at the first row.
    # Switching to WAL upgrades a read transaction to a write, and SQLite answers BUSY at
    # once, without calling the busy handler (deadlock avoidance), while another
    # connection writes a file not yet in WAL mode (two processes creating one new file
    # at once): retry here, within busy_timeout.
    wait, attempts = BusyWait(busy_timeout), 0
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL").fetchall()
            return
        except apsw.ReadOnlyError:
            return  # a read-only file still serves reads in the mode it is in
        except apsw.BusyError:
            if not wait(attempts):
                raise
            attempts += 1


def _writable(path: str) -> bool:
    """Whether this process may write ``path`` (by its modes and its mount; opens nothing)."""
    return os.access(path, os.W_OK, effective_ids=os.access in os.supports_effective_ids)


def _size(path: str) -> int | None:
    """A file's size, None if there is none; ``os.stat`` only (no descriptor is opened)."""
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return None


class Unchanged:
    """The change probe of a file opened ``immutable=1``, which also guards it.

    Immutable tells SQLite that nothing can change the file: it takes no locks and never
    looks at a -wal, so it would answer from a file changing under it (stale or torn). A
    readonly store opens a file so only where this user cannot write it; another user
    still may. So ``token()`` (on every read, and again after each read of the file) checks
    with ``os.stat`` that the file is as it was at open (device, inode, size, times: to the
    file system's time stamp granularity) and that no -wal has frames, and fails
    HOST_CONFIGURATION_NEEDED from the first time it is not.
    """

    __slots__ = ("_path", "_seen")
    may_wait = False  # two os.stat calls

    def __init__(self, path: str) -> None:
        self._path = path
        self._seen = self._stat()  # taken before SQLite first reads the file

    def _stat(self) -> tuple[object, ...]:
        try:
            found = os.stat(self._path)
        except FileNotFoundError:
            return ()
        wal = self._path + "-wal"
        frames = os.access(wal, os.F_OK) and bool(_size(wal))  # access() raises nothing when there is none
        return found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns, found.st_ctime_ns, frames

    def token(self) -> object:
        if self._stat() != self._seen:
            raise AgentError.host_configuration_needed(
                f"sqlite agent pool store file {self._path!r} changed after this read-only store opened it "
                "immutable (another user wrote to it): open the store again"
            )
        return 0

    def only_own_commit(self, before: object, after: object) -> bool:
        return False  # an immutable connection never commits

    def release(self) -> None:
        pass


def open_readonly(path: str | os.PathLike[str]) -> tuple[apsw.Connection, Unchanged | None]:
    """The connection of a ``readonly=True`` store (and of ``fastpool verify``), and the guard if it is immutable.

    SQLite reads a WAL file through its -wal and -shm, creating them if missing, and only
    a connection that can write removes them when it closes last. So: a connection that
    could write (but is kept from it) where this user can write; SQLite's read-only one
    where it creates nothing; else, with no transaction outside the database file, the
    file opened immutable; else a HOST_CONFIGURATION_NEEDED error saying what to change.
    """
    path = os.path.realpath(path)  # where SQLite puts the -wal and -shm, past symlinks
    folder = os.path.dirname(path)
    folder_writable = _writable(folder)
    if folder_writable and _writable(path):
        db = apsw.Connection(path, flags=apsw.SQLITE_OPEN_READWRITE)
        db.execute("PRAGMA query_only = ON")
        return db, None
    wal, shm = _size(path + "-wal"), os.path.exists(path + "-shm")
    if not folder_writable or (wal is not None and shm):
        db = apsw.Connection(path, flags=apsw.SQLITE_OPEN_READONLY)
        try:
            db.execute("SELECT count(*) FROM sqlite_master").fetchall()
            return db, None
        except (apsw.CantOpenError, apsw.ReadOnlyError):
            db.close()  # a WAL file without its -shm (or a hot journal): see below
            if wal and shm:
                raise
    if wal:
        why = "this user could not remove again" if folder_writable else "this user cannot create"
        raise AgentError.host_configuration_needed(
            f"sqlite agent pool store file {path!r} cannot be read read-only: {path + '-wal'!r} holds "
            f"transactions not yet checkpointed into it, and reading them needs {path + '-shm'!r}, which {why}; "
            f"make {folder!r} and the file writable for this user, or checkpoint the file "
            "(open and close it once read-write)"
        )
    if os.path.exists(path + "-journal"):
        raise AgentError.host_configuration_needed(
            f"sqlite agent pool store file {path!r} cannot be read read-only: {path + '-journal'!r} belongs "
            "to a transaction in progress or interrupted; once it is gone (a read-write open rolls "
            "an interrupted one back), open the store again"
        )
    unchanged = Unchanged(path)
    uri = Path(path).as_uri() + "?immutable=1"
    return apsw.Connection(uri, flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI), unchanged


def configure(db: apsw.Connection, path: str, readonly: bool, synchronous: str, busy_timeout: float) -> PointIndex:
    """Set a store's new connection up: WAL and ``synchronous`` (a writer), the tables of a new
    file and fastpool's format marker, the schema version checked; returns the point-read index."""
    tables = {row[0] for row in db.execute(_sql.TABLES)}
    if readonly:
        if not {"agent_pool_records", "agent_pool_event_seq"} <= tables:
            raise AgentError.host_configuration_needed(
                f"sqlite agent pool store file {path!r} has no agent pool tables"
            )
        if "fastpool_meta" in tables:
            check_schema_version(db)
        return PointIndex(PointIndex.version_of(db, tables), True)
    enable_wal(db, busy_timeout)
    db.execute(f"PRAGMA synchronous={synchronous.upper()}")
    level = db.execute("PRAGMA synchronous").fetchall()[0][0]
    if level != SYNCHRONOUS[synchronous]:
        raise AgentError.host_configuration_needed(f"sqlite agent pool store could not set synchronous={synchronous}")
    if not {"agent_pool_records", "agent_pool_event_seq"} <= tables:
        # A new file: create the Rust crate's tables and fastpool's format marker.
        with Write(db, True, False):
            for statement in _sql.SCHEMA:
                db.execute(statement)
            db.execute(_sql.MARK_SCHEMA_VERSION, (str(SCHEMA_VERSION),))
            db.execute(_sql.MARK_POINT_INDEX, (_sql.POINT_INDEX_VERSION,))
        tables = {row[0] for row in db.execute(_sql.TABLES)}
    elif "fastpool_meta" in tables:
        check_schema_version(db)
    version = PointIndex.version_of(db, tables)
    if version is None and "fastpool_meta" in tables:
        with Write(db, True, False):
            for statement in _sql.START_POINT_INDEX:
                db.execute(statement)
            db.execute(_sql.MARK_POINT_INDEX, (_sql.POINT_INDEX_VERSION,))
        version = _sql.POINT_INDEX_VERSION
    return PointIndex(version, False)


def check_schema_version(db: apsw.Connection) -> None:
    """HOST_CONFIGURATION_NEEDED if the file was written by a newer fastpool's format."""
    rows = db.execute(_sql.SCHEMA_VERSION_OF_FILE).fetchall()
    version = rows[0][0] if rows else str(SCHEMA_VERSION)
    if not (isinstance(version, str) and version.isdigit()) or int(version) > SCHEMA_VERSION:
        raise AgentError(
            AgentErrorKind.HOST_CONFIGURATION_NEEDED,
            RetryClassification.HOST_CONFIGURATION_NEEDED,
            f"sqlite agent pool store file has fastpool schema version {version!r}; "
            f"this fastpool reads version {SCHEMA_VERSION}: upgrade fastpool",
        )
