"""Cheap "has any connection committed?" probes for the per-pool cache.

``token()`` returns a value that changes whenever a transaction commits to the file.

The WAL-index probe reads the 48-byte header at the start of the ``-shm`` file (a stable
part of SQLite's file format, https://www.sqlite.org/walformat.html): its change counter,
frame count and salts change on every commit, so equal bytes mean nothing new. Reading a
kept mapping costs ~0.1 µs, against ~3 µs for ``PRAGMA data_version``, which is the
fallback wherever there is no shared WAL-index to read (not WAL, in-memory database).

Why reading the mapping cannot break SQLite's locking:

* **No descriptor is ever closed while SQLite may hold locks through another one.** On
  POSIX, closing *any* descriptor of a file drops *every* fcntl lock the process holds on
  it, SQLite's included (the WAL write lock, the DMS lock that tells other processes the
  ``-shm`` is in use). So each ``-shm`` inode is opened once per process, keyed by
  ``(st_dev, st_ino)``, and its descriptor and mapping are shared by every store object on
  it. They are released only when no store object of this process uses them *and* the file
  has been unlinked (``st_nlink == 0``): SQLite unlinks ``-shm`` only when the last
  connection anywhere closes, so no connection of this process holds locks on it then.
  (Someone deleting a live ``-shm`` by hand is the one exception; SQLite's "How To Corrupt
  An SQLite Database File" already lists that as corruption.)
* **Nothing reads a mapping that another process may truncate.** Another process truncates
  and re-initialises ``-shm`` only when it gets the DMS lock exclusively, that is, when no
  process holds it shared. A store reads its mapping only while its own SQLite connection
  is open, and a connection that opened ``-shm`` for writing holds the DMS lock shared from
  its first read until it closes, so the 48 bytes cannot vanish under the read (no SIGBUS).
  A connection that could only open ``-shm`` read-only may instead run on a private heap
  copy of the WAL-index without the DMS lock (SQLite's ``readonly_shm`` fallback), and a
  read-only store may be opened ``immutable`` (no locks at all): such stores read the header
  with ``os.pread`` (~0.8 µs), where a truncated file is a short read, never a signal.
* **The very ``-shm`` SQLite uses.** The path comes from SQLite itself
  (``Connection.db_filename``, symlinks resolved), never from the path the caller gave,
  so a stray ``<link>-shm`` beside a symlink cannot make a store blind.
* **Fork.** A child process holds none of its parent's locks; ``_base`` makes every store
  object inherited through ``fork()`` refuse to work (and so to read its mapping), and the
  children's counts of users start from zero.
* **A store object dropped unclosed** gives back the same, in the same order
  (``release_dropped``, its ``weakref.finalize``): its connection is closed first, then it
  stops counting as a user, so the ``-shm`` SQLite unlinked is released as after ``close()``.
  The collector may run that in a thread that holds this module's lock, so it never waits for
  the lock: a use it cannot count off at once is counted off by the next holder.
"""

from __future__ import annotations

import mmap
import os
import struct
import threading
from typing import Protocol

import apsw

# The first copy of the 48-byte WalIndexHdr.
_HEADER = 48
_CHANGE_COUNTER = struct.Struct("=I")  # iChange at byte 8; the wal-index is in native byte order


class ChangeProbe(Protocol):
    #: Whether ``token()`` may wait (on a lock of the file), so must not run on an event loop.
    may_wait: bool

    def token(self) -> object:
        """A value that changes whenever a transaction commits to the file."""
        ...

    def only_own_commit(self, before: object, after: object) -> bool:
        """True if exactly one commit, this connection's, lies between two tokens.

        ``before`` is read inside this connection's write transaction, ``after`` right
        after its COMMIT; a false answer only costs one catch-up query.
        """
        ...

    def release(self) -> None:
        """Called once the store's connection is closed; the probe is not used again."""
        ...


class _SharedHeader:
    """One ``-shm`` inode's descriptor and mapping, kept for every store object on it."""

    __slots__ = ("fd", "map", "users")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.map = mmap.mmap(fd, _HEADER, access=mmap.ACCESS_READ)  # holds a dup of fd
        self.users = 0

    def unlinked(self) -> bool:
        return os.fstat(self.fd).st_nlink == 0

    def close(self) -> None:
        self.map.close()
        os.close(self.fd)


_headers: dict[tuple[int, int], _SharedHeader] = {}
_headers_lock = threading.Lock()


def _acquire(shm_path: str) -> _SharedHeader | None:
    """The kept header mapping of ``shm_path``'s inode (opened now if new), one more user."""
    with _headers_lock:
        _release_unlinked()
        try:
            info = os.stat(shm_path)
            header = _headers.get((info.st_dev, info.st_ino))
            if header is None:
                fd = os.open(shm_path, os.O_RDONLY | os.O_CLOEXEC)
                info = os.fstat(fd)  # the inode actually opened, should the path have moved meanwhile
                header = _headers.get((info.st_dev, info.st_ino))
                if header is not None or info.st_size < _HEADER:
                    # A second descriptor of a file SQLite uses: closing it would drop the
                    # locks, so it is kept open (and unused) for the life of the process.
                    _stray_descriptors.append(fd)
                    if header is None:
                        return None
                else:
                    header = _headers[(info.st_dev, info.st_ino)] = _SharedHeader(fd)
        except (OSError, ValueError):
            return None
        header.users += 1
        return header


_stray_descriptors: list[int] = []


# Uses of dropped store objects the collector could not count off (it found the lock taken).
_uncounted: list[_SharedHeader] = []


def _release_unlinked() -> None:
    """Close the headers no store object uses whose ``-shm`` SQLite has unlinked (lock held)."""
    while _uncounted:
        _uncounted.pop().users -= 1
    for key, header in list(_headers.items()):
        if header.users == 0 and header.unlinked():
            del _headers[key]
            header.close()


def forget_users_after_fork() -> None:
    """In a forked child: the store objects counted as users belong to the parent."""
    global _headers_lock
    _headers_lock = threading.Lock()  # another thread may have held it at fork()
    _uncounted.clear()
    for header in _headers.values():
        header.users = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=forget_users_after_fork)


class WalIndexProbe:
    """Reads the kept WAL-index header mapping; only while the store's connection is open."""

    __slots__ = ("_header", "_map", "_fd")
    may_wait = False

    def __init__(self, header: _SharedHeader) -> None:
        self._header = header
        self._map = header.map
        self._fd = header.fd

    def token(self) -> object:
        return self._map[:_HEADER]

    def only_own_commit(self, before: object, after: object) -> bool:
        # iChange (offset 8) counts write transactions: +1 means no other commit slipped in.
        assert isinstance(before, bytes) and isinstance(after, bytes)
        unpack = _CHANGE_COUNTER.unpack_from
        return bool(unpack(after, 8)[0] == (unpack(before, 8)[0] + 1) & 0xFFFFFFFF)

    def release(self) -> None:
        with _headers_lock:
            self._header.users -= 1
            _release_unlinked()

    def release_unwaited(self) -> None:
        """``release()`` for the garbage collector: it may run in a thread that holds the lock."""
        if not _headers_lock.acquire(blocking=False):
            _uncounted.append(self._header)
            return
        try:
            self._header.users -= 1
            _release_unlinked()
        finally:
            _headers_lock.release()


class WalIndexReadProbe(WalIndexProbe):
    """Reads the header with ``os.pread``: for a connection that may not hold the DMS lock."""

    __slots__ = ()

    def token(self) -> object:
        return os.pread(self._fd, _HEADER, 0)


class PragmaProbe:
    """``PRAGMA data_version``: changes when another connection commits.

    A statement: in rollback-journal mode its read lock may wait for a writer (the busy
    handler), so it is not run on an event loop.
    """

    __slots__ = ("_connection",)
    may_wait = True

    def __init__(self, connection: apsw.Connection) -> None:
        self._connection = connection

    def token(self) -> object:
        return self._connection.execute("PRAGMA data_version").fetchall()[0][0]

    def only_own_commit(self, before: object, after: object) -> bool:
        # data_version ignores this connection's own commits.
        return before == after

    def release(self) -> None:
        pass


class NoProbe:
    """A closed (or inherited through fork) store's probe: every token is new."""

    __slots__ = ()
    may_wait = False

    def token(self) -> object:
        return object()

    def only_own_commit(self, before: object, after: object) -> bool:
        return False

    def release(self) -> None:
        pass


def open_probe(connection: apsw.Connection) -> ChangeProbe:
    """The cheapest probe this open connection's database supports.

    The WAL-index is read only when the database is in WAL mode and SQLite has its
    ``-shm`` open (the connection has read the database, so it holds the DMS lock).
    """
    filename = connection.db_filename("main")
    mode = connection.execute("PRAGMA journal_mode").fetchall()[0][0]
    if filename and mode == "wal":
        shm = filename + "-shm"
        header = _acquire(shm)
        if header is not None:
            # SQLite opens -shm read-write (and so takes the DMS lock) unless it cannot.
            if connection.readonly("main") or not os.access(shm, os.W_OK):
                return WalIndexReadProbe(header)
            return WalIndexProbe(header)
    return PragmaProbe(connection)


def release_dropped(connection: apsw.Connection, probe: ChangeProbe) -> None:
    """What ``close()`` releases, for a store object garbage-collected unclosed (its finalizer)."""
    try:
        connection.close()
    except apsw.Error:
        return  # SQLite may still have the file open: its -shm stays kept
    if isinstance(probe, WalIndexProbe):
        probe.release_unwaited()
    else:
        probe.release()
