"""The compiled reader shares equal recurring values (addresses, filters, lists of ids, ids)
between the records it decodes, through bounded tables: a replayed pool holds one object per
distinct value, and decoding many distinct values keeps none of them alive."""

from __future__ import annotations

import gc
import tracemalloc
from typing import Any

from fastpool import wire
from fastpool.benchmarking.rust_mix import rust_mix_payloads
from fastpool.benchmarking.workload import pool_payloads


def _rows(payloads: list[Any]) -> list[tuple[int, str, str]]:
    return [(seq, p.TYPE, wire.encode(p)) for seq, p in enumerate(payloads, 1)]


def test_a_replayed_pool_holds_one_object_per_recurring_value(c_engine: Any) -> None:
    payloads, _ = pool_payloads("pool.shared", 400)
    state = c_engine.PoolState("pool.shared")
    c_engine.replay_rows(state, _rows(payloads))
    snapshot = state.snapshot()
    messages = [stored.message for stored in snapshot.messages]
    compiled = [stored.compiled_filter for stored in snapshot.wakes]

    def objects(values: list[Any]) -> int:
        return len({id(value) for value in values})

    # One object per distinct value (a table slot that two values contend for may hold a
    # second copy now and then, more so when earlier decoding in this process filled the
    # tables: allow a few per cent).
    addresses = [m.to for m in messages]
    assert len(set(addresses)) < len(addresses) / 4 and len(set(compiled)) < len(compiled)  # values recur
    assert objects(addresses) <= len(set(addresses)) + max(2, len(addresses) // 20)
    assert objects(compiled) <= len(set(compiled)) + max(2, len(compiled) // 20)
    # The filter each wake record writes twice (the condition's, the compiled one's) and the
    # message id each message record writes twice (the message's, the receipt's).
    shared = [s.condition.filter is s.compiled_filter.criteria for s in snapshot.wakes]
    shared += [s.receipt.message_id is s.message.message_id for s in snapshot.messages]
    assert shared.count(False) <= max(2, len(shared) // 20), (shared.count(False), len(shared))


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
