"""``AgentPool`` against the Rust coordinator: every golden flow but ``races``, byte for byte.

Each scenario of ``fixtures/coordinator`` runs on both engines and over both a file (one
``SqliteAgentPoolStore`` object per host) and the in-memory store, in the default mode
(``strict=False``). Every result (or error: serde JSON, display, kind, retry), every journal
record with its cursor and every event, in order, and the pool's final records, snapshot and
event sequence must equal the fixture's lines exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from coordinator_flows import PARITY_SCENARIOS, SCENARIOS, Replay, canonical, expected_lines, load


def test_every_carried_scenario_is_replayed() -> None:
    assert set(SCENARIOS) == {
        "addressing",
        "basic_flow",
        "errors",
        "idempotency",
        "races",
        "two_hosts",
        "wake_lifecycle",
        "wake_matching",
    }
    assert "races" not in PARITY_SCENARIOS  # test_coordinator_races covers it


@pytest.mark.parametrize("kind", ["sqlite", "memory"])
@pytest.mark.parametrize("scenario", PARITY_SCENARIOS)
def test_scenario_replays_byte_for_byte(engine: Any, kind: str, scenario: str, tmp_path: Path) -> None:
    lines = load(scenario)
    produced = Replay(engine, kind, tmp_path).run(lines)
    expected = expected_lines(lines)
    if kind == "memory":
        expected = [in_memory_wording(line) for line in expected]
    for index, (want, got) in enumerate(zip(expected, produced)):
        assert canonical(got) == canonical(want), f"{scenario} line {index} (step {want.get('step')})"
    assert len(produced) == len(expected)


def in_memory_wording(line: dict[str, Any]) -> dict[str, Any]:
    """The flows ran over the SQLite store; the in-memory store words its errors without "sqlite "."""
    if "err_json" not in line:
        return line
    return {
        key: value.replace("sqlite agent pool store", "agent pool store") if isinstance(value, str) else value
        for key, value in line.items()
    }
