"""Calls whose caller's cancellation never cancels them (``aio`` and ``aio_pool``).

A call that reached a worker (or a group commit's queue) runs to its end; the cancelled
caller is told at once, and every later call waits for the cancelled ones first, so that it
sees what they did.
"""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

T = TypeVar("T")


class CancelledCalls:
    """The cancelled calls of one wrapper that are still running (true while there are any)."""

    __slots__ = ("_running",)

    def __init__(self) -> None:
        self._running: set[asyncio.Future[Any]] = set()

    def __bool__(self) -> bool:
        return bool(self._running)

    async def settled(self) -> None:
        """Wait until every call cancelled so far has ended."""
        if self._running:
            # A call cancelled under an event loop that has closed since (a host running
            # ``asyncio.run`` more than once) can never report back: its worker's result had
            # no loop to go to. Forget it rather than wait for good; the store serialises
            # what it still writes.
            self._running = {future for future in self._running if not future.get_loop().is_closed()}
            if self._running:
                await asyncio.wait(tuple(self._running))

    async def shielded(self, future: asyncio.Future[T]) -> T:
        """Await ``future``; cancelling the caller leaves it running, and remembered."""
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            self.keep(future)
            raise

    def keep(self, future: asyncio.Future[Any]) -> None:
        """Remember a call whose caller was cancelled until it ends."""
        self._running.add(future)
        future.add_done_callback(self._ended)

    def _ended(self, future: asyncio.Future[Any]) -> None:
        self._running.discard(future)
        if not future.cancelled():
            future.exception()  # nobody awaits it (later calls show its outcome): not "never retrieved"
