# cython: language_level=3, boundscheck=False, wraparound=False
"""The replay engine, compiled twin of ``_replay_py.py``: same names, results and errors.

Laid out as msgpack lays out ``_cmsgpack.pyx``: this file holds the directives, the public
names and the replay loop, and includes one file per job, in the order of ``_replay_py``'s
sections (diff a section with its twin side by side):

* ``_plans.pxi``: each model class read once from the schema into a plan;
* ``_writer.pxi``: ``to_plain`` and ``dumps`` (the text written from C, ``_replay.h``);
* ``_reader.pxi``: ``from_plain``, ``parse_json``, ``decode_text``, ``decode_payload`` (the text read in C);
* the replay loop below: ``replay_rows`` and ``decode_row``, applying records with
  ``PoolState``: the pure engine's ``_pool_state.py``, compiled (``fastpool._pool_state_c``).

Only the valid path is fast: anything the plans, the writer or the reader do not cover
exactly goes to ``_replay_py``, so an odd input gets the twin's result or exception.
"""

cimport cython

from ._pool_state_c cimport PoolState as _CompiledPoolState

from itertools import chain

from . import _pool_state_c, _replay_py as _py
from .enums import AgentErrorKind, RetryClassification
from .errors import AgentError, InvalidInput
from ._pool_state_c import PoolState

__all__ = [
    "make", "to_plain", "dumps", "from_plain", "parse_json", "decode_text", "decode_payload", "replay_rows",
    "decode_row", "corrupt_record", "PoolState",
]

include "_plans.pxi"
include "_writer.pxi"
include "_reader.pxi"

# The compiled pool state builds its snapshots with the compiled make (slot stores from C).
_pool_state_c.make = make


# ---------------------------------------------------------------- replay


def replay_rows(state, rows, seen=None):
    """Decode and apply ``(seq, kind, payload_json)`` rows in order; ``seen(payload, seq)``
    after each, if given.

    A row that ``decode_row`` refuses raises ``corrupt_record``'s error, worded with the
    state's ``store_name``; rows before it stay applied, so ``state.cursor`` is the last good
    record.
    """
    cdef _CompiledPoolState fast = state if type(state) is PoolState else None
    remaining = iter(rows)
    for row in remaining:
        if type(row) is not tuple or len(<tuple>row) != 3:
            # Unpacking errors read differently from Cython: the twin takes over from here.
            return _py.replay_rows(state, chain((row,), remaining), seen)
        sequence, kind, text = <tuple>row
        try:
            payload = decode_row(kind, text)
        except InvalidInput as error:
            raise corrupt_record(state.store_name, state.pool_id, sequence, error.message) from None
        if fast is not None:
            _CompiledPoolState.apply(fast, payload, sequence)  # the C method, without a look-up
        else:
            state.apply(payload, sequence)
        if seen is not None:
            seen(payload, sequence)


def decode_row(kind, text):
    """A stored row's payload; ``InvalidInput`` saying why if the row is corrupt (its text
    does not decode, or its ``kind`` column disagrees with the payload's type)."""
    payload = _decode_payload(text)
    if payload.TYPE != kind:
        raise InvalidInput(f"kind column {kind!r} disagrees with payload type {payload.TYPE!r}")
    return payload


def corrupt_record(store_name, pool_id, sequence, reason):
    """The error for a stored record that cannot be replayed, worded by the store that read it."""
    return AgentError(
        AgentErrorKind.INVALID_STATE_TRANSITION,
        RetryClassification.REPAIR_NEEDED,
        f"{store_name} serialization failure: pool {pool_id!r} record {sequence}: {reason}",
    )

