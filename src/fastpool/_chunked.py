"""``ChunkedTuple``: an immutable sequence stored as a tuple of tuples (chunks).

A snapshot's ``messages`` and ``wakes`` are ``ChunkedTuple``s so that successive snapshots
share structure: after one record changed, the next snapshot's sequence is a new tuple of
chunk references in which only the changed chunk is new (``_pool_state`` builds them), so a
snapshot costs work proportional to what changed, not to the pool.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from itertools import accumulate, chain
from typing import Any, TypeVar, overload

__all__ = ["ChunkedTuple"]

T = TypeVar("T")

#: How many items a chunk of a ``ChunkedTuple`` built from an iterable holds.
CHUNK = 256


class ChunkedTuple(Sequence[T]):
    """An immutable sequence that behaves as the tuple of the same items, stored in chunks.

    It compares equal to the tuple of the same items (and to another ``ChunkedTuple`` of
    them), hashes as that tuple does, and its ``repr`` is that tuple's; like a tuple, it is
    never equal to a list. It supports ``len``, indexing, slicing (a slice is a ``tuple``),
    iteration, ``reversed``, ``in``, ``index`` and ``count``; ``tuple(seq)`` converts it.
    ``ChunkedTuple(items)`` builds one from any iterable.
    """

    __slots__ = ("_chunks", "_len", "_starts", "_hash")

    _chunks: tuple[tuple[T, ...], ...]
    _len: int
    _starts: list[int] | None  # where each chunk starts, made on the first indexing
    _hash: int | None

    def __init__(self, items: Iterable[T] = ()) -> None:
        values = tuple(items)
        self._chunks = tuple(values[i : i + CHUNK] for i in range(0, len(values), CHUNK))
        self._len = len(values)
        self._starts = self._hash = None

    @classmethod
    def _of_chunks(cls, chunks: tuple[tuple[T, ...], ...], length: int) -> ChunkedTuple[T]:
        """One over ``chunks`` (no empty one), holding ``length`` items in all (no checks)."""
        seq: ChunkedTuple[T] = object.__new__(cls)
        seq._chunks = chunks
        seq._len = length
        seq._starts = seq._hash = None
        return seq

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[T]:
        return chain.from_iterable(self._chunks)

    def __reversed__(self) -> Iterator[T]:
        return chain.from_iterable(map(reversed, reversed(self._chunks)))

    def __contains__(self, value: object) -> bool:
        return any(value in chunk for chunk in self._chunks)

    @overload
    def __getitem__(self, index: int) -> T: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[T, ...]: ...
    def __getitem__(self, index: int | slice) -> T | tuple[T, ...]:
        chunks = self._chunks
        if isinstance(index, slice):
            start, stop, step = index.indices(self._len)
            if step != 1:
                return tuple(self)[index]
            if start >= stop:
                return ()
            first, last = self._locate(start), self._locate(stop - 1)
            starts = self._starts
            assert starts is not None
            if first == last:
                return chunks[first][start - starts[first] : stop - starts[first]]
            middle = chain.from_iterable(chunks[first + 1 : last])
            head, tail = chunks[first][start - starts[first] :], chunks[last][: stop - starts[last]]
            return tuple(chain(head, middle, tail))
        position = index.__index__()
        if position < 0:
            position += self._len
        if not 0 <= position < self._len:
            raise IndexError("tuple index out of range")
        if len(chunks) == 1:
            return chunks[0][position]
        found = self._locate(position)
        return chunks[found][position - self._starts[found]]  # type: ignore[index]

    def _locate(self, position: int) -> int:
        """The index of the chunk that holds item ``position`` (in range)."""
        starts = self._starts
        if starts is None:
            starts = self._starts = list(accumulate(map(len, self._chunks), initial=0))
        return bisect_right(starts, position) - 1

    def index(self, value: Any, start: int = 0, stop: int | None = None) -> int:
        """The first position of ``value`` in ``[start:stop]``; ``ValueError`` if absent."""
        begin, end, _ = slice(start, stop).indices(self._len)
        offset = 0
        for chunk in self._chunks:
            size = len(chunk)
            if offset + size > begin and offset < end:
                try:
                    return offset + chunk.index(value, max(begin - offset, 0), end - offset)
                except ValueError:
                    pass
            offset += size
        raise ValueError("tuple.index(x): x not in tuple")

    def count(self, value: Any) -> int:
        """How many items equal ``value``."""
        return sum(chunk.count(value) for chunk in self._chunks)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ChunkedTuple):
            if self._len != other._len:
                return False
            mine, theirs = self._chunks, other._chunks
            if list(map(len, mine)) == list(map(len, theirs)):
                # Shared chunks are the same object: tuple equality skips identical items only.
                return all(a is b or a == b for a, b in zip(mine, theirs))
            return tuple(self) == tuple(other)
        if isinstance(other, tuple):
            return self._len == len(other) and tuple(self) == other
        return NotImplemented

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(tuple(self))
        return self._hash

    def __repr__(self) -> str:
        return repr(tuple(self))

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (tuple(self),))
