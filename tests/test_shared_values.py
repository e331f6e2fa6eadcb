"""The compiled reader shares equal recurring values (addresses, filters, lists of ids, ids)
between the records it decodes, through bounded tables: a replayed pool holds one object per
distinct value, and decoding many distinct values keeps none of them alive."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import tracemalloc
from typing import Any

from fastpool import wire
from fastpool.benchmarking.rust_mix import rust_mix_payloads


def _rows(payloads: list[Any]) -> list[tuple[int, str, str]]:
    return [(seq, p.TYPE, wire.encode(p)) for seq, p in enumerate(payloads, 1)]


# Run in a new process, whose tables start empty as a host's do: after other decoding in
# the same process, a table may hold an equal value decoded earlier, so that two fields of
# one record get equal but distinct objects (a few per cent of them, when it is full).
_COUNT_SHARED = """
import json
from fastpool import _replay as engine, wire
from fastpool.benchmarking.workload import pool_payloads

payloads, _ = pool_payloads("pool.shared", 400)
state = engine.PoolState("pool.shared")
engine.replay_rows(state, [(seq, p.TYPE, wire.encode(p)) for seq, p in enumerate(payloads, 1)])
snapshot = state.snapshot()
addresses = [stored.message.to for stored in snapshot.messages]
compiled = [stored.compiled_filter for stored in snapshot.wakes]
# The filter each wake record writes twice (the condition's, the compiled one's) and the
# message id each message record writes twice (the message's, the receipt's).
shared = [s.condition.filter is s.compiled_filter.criteria for s in snapshot.wakes]
shared += [s.receipt.message_id is s.message.message_id for s in snapshot.messages]
print(json.dumps({
    "addresses": [len(addresses), len(set(addresses)), len({id(a) for a in addresses})],
    "compiled": [len(compiled), len(set(compiled)), len({id(c) for c in compiled})],
    "unshared": [shared.count(False), len(shared)],
}))
"""


def test_a_replayed_pool_holds_one_object_per_recurring_value(c_engine: Any) -> None:
    """In a new process: one object per distinct value (a table slot that two values contend
    for may hold a second copy now and then: allow a few)."""
    out = subprocess.run([sys.executable, "-c", _COUNT_SHARED], capture_output=True, text=True, check=True).stdout
    counts = json.loads(out)
    for name in ("addresses", "compiled"):
        values, distinct, objects = counts[name]
        assert distinct < values / 2, f"{name}: values recur"
        assert objects <= distinct + 2, (name, objects, distinct)
    unshared, fields = counts["unshared"]
    assert fields > 100 and unshared <= 2, (unshared, fields)


def test_shared_values_are_equal_to_what_the_twin_decodes(c_engine: Any, py_engine: Any) -> None:
    rows = _rows(rust_mix_payloads("pool.rust", 200))
    compiled, pure = c_engine.PoolState("pool.rust"), py_engine.PoolState("pool.rust")
    c_engine.replay_rows(compiled, rows)
    py_engine.replay_rows(pure, rows)
    assert compiled.snapshot() == pure.snapshot()
    # A value whose text differs in one byte is not taken for the one read before.
    first, second = rows[5][2], rows[5][2].replace("run.00006", "run.00007")
    assert second != first
    assert c_engine.decode_payload(second) == py_engine.decode_payload(second)
    assert c_engine.decode_payload(first).stored.message.to is c_engine.decode_payload(first).stored.message.to


def test_decoding_many_distinct_values_keeps_a_bounded_amount(c_engine: Any) -> None:
    payload = rust_mix_payloads("pool.bounded", 6)[-1]
    message, text = payload.stored.message, wire.encode(payload)

    def decode(start: int, count: int) -> None:
        # Every record has values of its own: an address, a list of ids, a correlation, ids.
        for i in range(start, start + count):
            unique = text.replace(message.to.target.run_id, f"run.u{i:07d}")
            c_engine.decode_payload(unique.replace(message.correlation.entries[0].value, f"t.u{i:07d}"))

    tracemalloc.start()  # first: what the tables drop is then counted as it is freed
    try:
        decode(0, 9000)  # the tables fill up
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        decode(9000, 9000)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # Kept, 9,000 such payloads would hold over 5 MB; the tables only swap what they hold.
    assert grown < 128 * 1024, grown
