"""Several processes, each with its own ``AgentPool`` on one file, on the same keys at once.

Four ``spawn`` processes join one pool, register the same wakes, then two send the same
messages while the other two cancel the same wakes (``coordinator_workers``). In both modes
the file then holds one ``pool_created``, exactly one accepted and one delivered record per
message, one registration per wake, at most one trigger and never a trigger after a cancel;
with ``strict=True`` each wake leaves ``registered`` exactly once.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import coordinator_workers
import pytest
from test_multiprocess import run_workers

from fastpool import SqliteAgentPoolStore

pytestmark = pytest.mark.slow

WORKERS, COUNT = 4, 24


def test_processes_coordinating_one_pool_record_each_transition_once(tmp_path: Path) -> None:
    path = tmp_path / "pools.sqlite"
    SqliteAgentPoolStore(path).close()  # the file exists before the processes race

    reports = run_workers(
        coordinator_workers.mp_coordinate, [(str(path), worker, WORKERS, COUNT) for worker in range(WORKERS)]
    )

    assert [report["errors"] for report in reports] == [[]] * WORKERS
    with SqliteAgentPoolStore(path) as store:
        for mode in ("parity", "strict"):
            pool_id = f"pool.{mode}"
            records = [record.payload for record in store.watch(pool_id)]
            assert [payload.TYPE for payload in records].count("pool_created") == 1, mode
            messages: dict[str, list[str]] = defaultdict(list)
            wakes: dict[str, list[str]] = defaultdict(list)
            for payload in records:
                if payload.TYPE == "run_message":
                    messages[payload.stored.message.message_id].append(payload.stored.receipt.status.value)
                elif payload.TYPE == "wake":
                    wakes[payload.stored.condition.condition_id].append(payload.stored.registration.status.value)
            assert messages == {f"m.{n}": ["accepted", "delivered"] for n in range(COUNT)}, mode
            assert set(wakes) == {f"w.{n}" for n in range(COUNT)}
            for condition_id, statuses in wakes.items():
                assert statuses[0] == "registered" and statuses.count("registered") == 1, (mode, statuses)
                assert statuses.count("triggered") <= 1, (mode, statuses)
                if "cancelled" in statuses and "triggered" in statuses:
                    assert statuses.index("triggered") < statuses.index("cancelled"), (mode, statuses)
                if mode == "strict":
                    assert len(statuses) == 2, (condition_id, statuses)  # one way out of registered
            for report in reports:
                assert report[mode]["registered"] == ["registered"] * COUNT
            if mode == "strict":
                # A sender that lost a key to another finds it accepted or delivered; strict delivers.
                assert all(status == "delivered" for report in reports for status in report[mode]["sent"])
                refused = sum(report[mode]["refused"] for report in reports)
                cancelled = sum(statuses.count("cancelled") for statuses in wakes.values())
                assert refused + cancelled == (WORKERS // 2) * COUNT
            snapshot = store.snapshot(pool_id)
            assert [member.run_id for member in snapshot.members] == [f"run.{n}" for n in range(WORKERS)]
            assert all(stored.registration.status.value != "registered" for stored in snapshot.wakes), mode
