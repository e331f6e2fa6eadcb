"""Exceptions injected where CPython delivers a signal's: the harness of the interrupt tests.

A signal handler's exception (``KeyboardInterrupt``, a ``signal.alarm`` timeout) is raised
between two bytecodes of the main thread, at the points where the interpreter checks for
pending calls: on entering a Python function and after a C function returns (and on a
backward jump). ``sys.setprofile`` reports exactly those two events ("call", "c_return"), and
an exception raised by the profile function propagates from there, as a handler's would. An
``Injector`` counts the points inside fastpool's own source and raises at the Nth; the
interpreter then unsets the profile function, so each run gets one exception, as a host gets
one interrupt.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import apsw

import fastpool

SOURCE = str(Path(fastpool.__file__).parent)


class Injector:
    """Raise ``error`` at the ``at``-th point (1-based; ``None``: only count them)."""

    def __init__(self, at: int | None = None, error: Callable[[], BaseException] = KeyboardInterrupt) -> None:
        self.at = at
        self.error = error
        self.seen = 0
        self.fired = False

    def __call__(self, frame: FrameType, event: str, arg: Any) -> None:
        if event in ("call", "c_return") and frame.f_code.co_filename.startswith(SOURCE):
            self.seen += 1
            if self.seen == self.at:
                self.fired = True
                raise self.error()

    @contextmanager
    def armed(self) -> Iterator[Injector]:
        """Inject into the calls this thread makes inside the block."""
        sys.setprofile(self)
        try:
            yield self
        finally:
            sys.setprofile(None)


def points(call: Callable[[], object]) -> int:
    """How many injection points one ``call`` passes."""
    counter = Injector()
    with counter.armed():
        call()
    return counter.seen


def no_transaction_left(path: Path, db: apsw.Connection | None) -> None:
    """The store's connection is in no transaction, and another connection gets the write lock at once."""
    assert db is not None and db.getautocommit(), "a transaction was left open"
    other = apsw.Connection(str(path))
    try:
        other.setbusytimeout(0)
        other.execute("BEGIN IMMEDIATE")  # SQLITE_BUSY if the store still held the write lock
        other.execute("ROLLBACK")
    finally:
        other.close()


def thread_of(
    call: Callable[[], object], outcomes: dict[int, tuple[str, Any]], index: int, injector: Injector | None = None
) -> threading.Thread:
    """A started thread running ``call`` (with ``injector`` armed): its outcome lands in ``outcomes``."""

    def run() -> None:
        try:
            if injector is None:
                outcomes[index] = ("ok", call())
            else:
                with injector.armed():
                    outcomes[index] = ("ok", call())
        except BaseException as error:  # noqa: BLE001 - what the thread ended on, for the test to see
            outcomes[index] = ("raised", error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread
