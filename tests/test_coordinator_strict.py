"""``AgentPool(strict=True)``: the "Python should do better" items of COORDINATOR.md §7.

Each item is tested beside the default mode's Rust behaviour. The golden flows then differ
exactly at those spots: replayed with ``strict=True``, four of them are unchanged, and the
other three only from the step the README names on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from coordinator_flows import Replay, canonical, expected_lines, load

from fastpool import (
    AgentError,
    AgentErrorKind,
    AgentPool,
    AgentPoolMember,
    AgentRuntime,
    EventFilter,
    EventKind,
    InMemoryAgentEventBus,
    InMemoryAgentPoolStore,
    InMemoryRunJournal,
    InvalidInput,
    MessageStatus,
    RunAddress,
    RunMessage,
    WakeCondition,
    WakeRegistrationStatus,
)

POOL = "pool.strict"
MODES = pytest.mark.parametrize("strict", [False, True], ids=["parity", "strict"])


def build(strict: bool, *runs: str, store: Any = None, **ports: Any) -> AgentPool:
    ports = {"journal": InMemoryRunJournal(), "event_bus": InMemoryAgentEventBus(), **ports}
    pool = AgentPool(POOL, runtime=AgentRuntime(**ports), store=store, strict=strict)
    for run_id in runs:
        pool.join_run(AgentPoolMember(run_id=run_id, agent_id=f"agent.{run_id}"))
    return pool


def message(message_id: str, key: str, sender: str = "run.a", to: str = "run.b") -> RunMessage:
    return RunMessage(
        message_id=message_id,
        from_=sender,
        to=RunAddress.run(to),
        content_ref=f"content.{message_id}",
        idempotency_key=key,
    )


def wake(
    condition_id: str, key: str, run_id: str = "run.b", kind: EventKind = EventKind.RUN_MESSAGE_DELIVERED, **fields: Any
) -> WakeCondition:
    """A wake of ``run_id`` that ``run.a``'s next message event of ``kind`` triggers."""
    of_a = EventFilter(run_ids=("run.a",), kinds=(kind,))
    return WakeCondition(condition_id=condition_id, run_id=run_id, filter=of_a, idempotency_key=key, **fields)


def records(pool: AgentPool) -> list[str]:
    return [record.payload.TYPE for record in pool.watch_pool()]


# -------------------------------------------------------------------- 1. ports at construction (§7 item 7)


@pytest.mark.parametrize("missing", ["journal", "event_bus"])
def test_strict_requires_both_ports_when_it_is_built(missing: str) -> None:
    store = InMemoryAgentPoolStore()
    with pytest.raises(AgentError) as caught:
        build(True, store=store, **{missing: None})
    port = "run journal" if missing == "journal" else "agent event bus"
    assert str(caught.value) == f"HostConfigurationNeeded: missing required runtime port: {port}"
    assert caught.value.causal_ids.run_id is None
    assert list(store.watch(POOL)) == []  # the pool was not even opened
    # The default mode accepts it, as Rust does, and fails at the first transition, after the store write.
    pool = build(False, store=store, **{missing: None})
    with pytest.raises(AgentError, match=port):
        pool.join_run(AgentPoolMember(run_id="run.a", agent_id="agent.a"))


# -------------------------------------------------------------------- 2. a wake whose owner left (§7 item 4)


@MODES
def test_a_wake_whose_owner_left_does_not_break_an_unrelated_send(strict: bool) -> None:
    pool = build(strict, "run.a", "run.b", "run.c")
    pool.suspend_until("run.b", wake("w.b", "key.w.b", kind=EventKind.RUN_MESSAGE_ACCEPTED))
    pool.leave_run("run.b")
    sent = message("m.1", "key.m.1", to="run.c")
    if not strict:
        # Rust: the trigger raises after the accepted transition was stored, and every retry
        # returns the stale accepted receipt (fixture membership, steps 9-10).
        with pytest.raises(AgentError, match="run is not a member of this agent pool"):
            pool.send(sent)
        assert pool.send(sent).status is MessageStatus.ACCEPTED
        return
    assert pool.send(sent).status is MessageStatus.DELIVERED
    assert pool.store.wake(POOL, "w.b").registration.status is WakeRegistrationStatus.REGISTERED
    with pytest.raises(AgentError, match="not a member"):
        pool.poll_wake("w.b")  # the wake's own calls still need its owner


# -------------------------------------------------------------------- 3. cancel only a registered wake (§7 item 3)


@MODES
def test_cancel_of_a_wake_no_longer_registered(strict: bool) -> None:
    pool = build(strict, "run.a", "run.b")
    timed_out = pool.suspend_until("run.b", wake("w.timeout", "key.w.timeout", timeout_millis=0))
    assert timed_out.status is WakeRegistrationStatus.TIMED_OUT
    registered = pool.suspend_until("run.b", wake("w.open", "key.w.open"))
    assert pool.cancel_wake("w.open").status is WakeRegistrationStatus.CANCELLED
    before = len(records(pool))
    for condition_id, status in (("w.timeout", "timed_out"), ("w.open", "cancelled")):
        if strict:
            with pytest.raises(AgentError) as caught:
                pool.cancel_wake(condition_id)
            assert caught.value.kind is AgentErrorKind.INVALID_STATE_TRANSITION
            assert caught.value.message.startswith(f"wake condition {condition_id!r} is {status}: only a registered")
        else:
            assert pool.cancel_wake(condition_id).status is WakeRegistrationStatus.CANCELLED  # appended again
    assert len(records(pool)) == before + (0 if strict else 2)
    assert registered.status is WakeRegistrationStatus.REGISTERED


# -------------------------------------------------------------------- 4. a reused key (§7 item 10)


@MODES
def test_a_key_reused_for_another_message_or_condition(strict: bool) -> None:
    pool = build(strict, "run.a", "run.b")
    first = pool.send(message("m.1", "key.shared"))
    registration = pool.suspend_until("run.b", wake("w.1", "key.wake"))
    other_message, other_wake = message("m.2", "key.shared"), wake("w.2", "key.wake", run_id="run.a")
    if not strict:
        assert pool.send(other_message) == first  # the key alone decides (fixture idempotency step 7)
        assert pool.suspend_until("run.a", other_wake) == registration  # even another run's (step 19)
        return
    with pytest.raises(InvalidInput, match="'key.shared' is already recorded for message_id 'm.1'"):
        pool.send(other_message)
    with pytest.raises(InvalidInput, match="'key.wake' is already recorded for condition_id 'w.1'"):
        pool.suspend_until("run.a", other_wake)
    assert pool.send(message("m.1", "key.shared")) == first  # the same message is still deduplicated


# ------------------------------------------------------------ 5. an accepted receipt resumes delivery (§7 item 5)


@MODES
def test_an_accepted_receipt_found_by_dedupe_is_delivered(strict: bool) -> None:
    journal = InMemoryRunJournal()
    store = InMemoryAgentPoolStore()
    pool = build(strict, "run.a", "run.b", store=store, journal=journal)
    sent = message("m.half", "key.m.half")
    # The journal fails during the delivered transition: accepted is stored (fixture errors step 18).
    original = journal.append

    def failing_after_accepted(record: Any) -> str:
        if record.payload.TYPE == "run_message" and record.payload.delivery_status is MessageStatus.DELIVERED:
            journal.append = original  # type: ignore[method-assign]
            raise AgentError(AgentErrorKind.JOURNAL_FAILURE, "RepairNeeded", "journal unavailable")
        return original(record)

    journal.append = failing_after_accepted  # type: ignore[method-assign]
    with pytest.raises(AgentError, match="journal unavailable"):
        pool.send(sent)
    retried = build(strict, store=store).send(sent)  # another host, as in step 19
    if not strict:
        assert retried.status is MessageStatus.ACCEPTED  # forever: nothing ever delivers it
        return
    assert retried.status is MessageStatus.DELIVERED and retried.delivered_to == ("run.b",)
    assert build(strict, store=store).send(sent) == retried  # delivered once
    statuses = [r.payload.stored.receipt.status.value for r in store.watch(POOL) if r.payload.TYPE == "run_message"]
    assert statuses == ["accepted", "delivered"]


# -------------------------------------------------------------------- 6. ids too long for the derived ids (§2.3)


def test_strict_refuses_ids_too_long_for_the_derived_ids_up_front() -> None:
    store = InMemoryAgentPoolStore()
    with pytest.raises(InvalidInput, match="pool_id: at most 474 bytes with strict=True"):
        AgentPool(
            "p" * 475, runtime=AgentRuntime(InMemoryRunJournal(), InMemoryAgentEventBus()), store=store, strict=True
        )
    assert list(store.watch("p" * 475)) == []
    fits = AgentPool("é" * 237, runtime=AgentRuntime(InMemoryRunJournal(), InMemoryAgentEventBus()), strict=True)
    fits.join_run(AgentPoolMember(run_id="run.a", agent_id="agent.a"))  # 474 bytes: every event id fits
    pool = build(True, "run.a", "run.b")
    long = message("m" * 494, "key.long")
    with pytest.raises(InvalidInput, match="message.message_id: at most 493 bytes with strict=True"):
        pool.send(long)
    with pytest.raises(InvalidInput, match="at most 493 bytes"):
        pool.record_message_status(long, MessageStatus.RESPONDED, ["run.b"])
    # Before the dedupe lookup: even a key already recorded is refused for such a message.
    parity = build(False, "run.a", "run.b", store=pool.store)
    recorded = parity.send(message("m.ok", "key.long"))
    assert parity.send(long) == recorded
    with pytest.raises(InvalidInput):
        pool.send(long)


# -------------------------------------------------------------------- the golden flows with strict=True


UNCHANGED = ["addressing", "basic_flow", "two_hosts", "wake_matching"]
#: Where a flow leaves Rust's behaviour: the steps whose results are strict's own.
CHANGED = {"idempotency": (7, 19), "wake_lifecycle": (13,), "errors": (19,)}


@pytest.mark.parametrize("scenario", UNCHANGED)
def test_flows_that_meet_no_strict_item_replay_unchanged(engine: Any, scenario: str, tmp_path: Path) -> None:
    lines = load(scenario)
    assert [canonical(line) for line in Replay(engine, "sqlite", tmp_path, strict=True).run(lines)] == [
        canonical(line) for line in expected_lines(lines)
    ]


@pytest.mark.parametrize("scenario", sorted(CHANGED))
def test_flows_differ_only_from_the_strict_steps(engine: Any, scenario: str, tmp_path: Path) -> None:
    lines = load(scenario)
    produced = Replay(engine, "sqlite", tmp_path, strict=True).run(lines)
    expected = expected_lines(lines)
    steps = CHANGED[scenario]
    if scenario == "idempotency":
        # Only the two reused keys' results differ; every journal record, event and record is Rust's.
        same = [line for line in expected if not (line["line"] == "result" and line.get("step") in steps)]
        assert [
            canonical(line) for line in produced if not (line["line"] == "result" and line.get("step") in steps)
        ] == [canonical(line) for line in same]
        refused = [line for line in produced if line["line"] == "result" and line.get("step") in steps]
        assert [line["kind"] for line in refused] == ["InvalidStateTransition"] * 2
        assert all("is already recorded for" in line["display"] for line in refused)
        return
    first = steps[0]
    before = [canonical(line) for line in expected if line.get("step", first) < first]
    assert [canonical(line) for line in produced if line.get("step", first) < first] == before
    result = next(line for line in produced if line["line"] == "result" and line["step"] == first)
    if scenario == "wake_lifecycle":
        assert "is triggered: only a registered wake can be cancelled" in result["display"]  # step 13
    else:
        assert '"status":"delivered"' in result["ok_json"]  # step 19 resumes the half-sent message
