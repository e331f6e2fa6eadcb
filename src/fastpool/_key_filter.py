"""The keys a trimmed pool state forgot, as a Bloom filter: a key never recorded is known new
without asking the database.

A trimmed state (``bounded_state``) answers a key it does not hold by looking it up in the
database: 20 µs on SQLite, a round trip on PostgreSQL. Most keys asked for are new ones (a
send checks its idempotency key before recording it), and a filter of every key the state
forgot answers those with no look-up, for about 3 bytes a key instead of the ~900 a kept
message costs. A "maybe" (a forgotten key, or 0.2 % of new ones per layer) is looked up.

The filter grows in layers, each twice the last, so that it needs no size in advance and
its false positives stay rare: 24 bits a key, three probes from one 64-bit ``hash`` (the
string caches it). Python's string hash changes between processes: a filter lives and dies
with its state, in one process.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["KeyFilter"]

_FIRST_CAPACITY = 4096  # keys in the first layer (12 KB)
_BITS_PER_KEY = 24  # with three probes: 0.16 % false positives in a full layer


class KeyFilter:
    """A set of strings that may answer "maybe" for one it never got (never "no" for one it got)."""

    __slots__ = ("_layers", "_room", "_count")

    def __init__(self) -> None:
        self._layers: list[tuple[bytearray, int]] = []  # (bits, mask of a bit index)
        self._room = 0  # keys the newest layer still takes
        self._count = 0

    def __len__(self) -> int:
        return self._count  # keys added (repeats included)

    def add_all(self, keys: Iterable[str]) -> None:
        for key in keys:
            if not self._room:
                self._grow()
            bits, mask = self._layers[-1]
            h = hash(key)
            step = (h >> 32) | 1
            for _ in range(3):
                index = h & mask
                bits[index >> 3] |= 1 << (index & 7)
                h += step
            self._room -= 1
            self._count += 1

    def __contains__(self, key: object) -> bool:
        h0 = hash(key)
        step = (h0 >> 32) | 1
        for bits, mask in self._layers:
            h = h0
            for _ in range(3):
                index = h & mask
                if not bits[index >> 3] >> (index & 7) & 1:
                    break
                h += step
            else:
                return True
        return False

    def _grow(self) -> None:
        capacity = _FIRST_CAPACITY << len(self._layers)
        size = capacity * _BITS_PER_KEY
        bits = 1 << (size - 1).bit_length()  # a power of two: a bit index is a mask away
        self._layers.append((bytearray(bits >> 3), bits - 1))
        self._room = capacity
