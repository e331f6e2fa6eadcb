"""``AgentPool`` and its ports beyond the golden flows: construction, the in-memory journal and
bus (the Rust test journal's rules, the bus's scan, cursors and queue bounds), the matching
rule, runtime-provided run info, threads sharing one runtime, and ids too long for the ids
derived from them."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from fastpool import (
    AgentError,
    AgentErrorKind,
    AgentPool,
    AgentPoolMember,
    AgentPoolStoreConfig,
    AgentPoolWakePolicy,
    AgentRuntime,
    EventFilter,
    EventFrame,
    EventKind,
    EventOverflowReason,
    InMemoryAgentEventBus,
    InMemoryAgentPoolStore,
    InMemoryRunJournal,
    InvalidInput,
    MessageStatus,
    RetryClassification,
    RunAddress,
    RunMessage,
    SubscriberOverflowPolicy,
    SubscriberQueueConfig,
    WakeCondition,
    WakeRegistrationStatus,
)
from fastpool.events import envelope_matches

POOL = "pool.unit"


def runtime(**ports: Any) -> AgentRuntime:
    ports = {"journal": InMemoryRunJournal(), "event_bus": InMemoryAgentEventBus(), **ports}
    return AgentRuntime(**ports)


def pool_with(*runs: str, **options: Any) -> AgentPool:
    pool = AgentPool(POOL, runtime=options.pop("runtime", None) or runtime(), **options)
    for run_id in runs:
        pool.join_run(AgentPoolMember(run_id=run_id, agent_id=f"agent.{run_id}"))
    return pool


def message(n: int, sender: str = "run.a", to: str = "run.b", **fields: Any) -> RunMessage:
    return RunMessage(
        message_id=f"m.{n}",
        from_=sender,
        to=RunAddress.run(to),
        content_ref=f"content.{n}",
        idempotency_key=fields.pop("key", f"key.{n}"),
        **fields,
    )


def events(pool: AgentPool) -> list[str]:
    bus = pool.runtime.event_bus
    assert isinstance(bus, InMemoryAgentEventBus)
    return [frame.event.envelope.event_kind.value for frame in bus.frames]


# -------------------------------------------------------------------- construction


def test_construction_checks_its_arguments() -> None:
    with pytest.raises(AgentError) as caught:
        AgentPool(POOL, runtime=None)
    assert str(caught.value) == "host configuration needed: agent pool requires runtime"
    with pytest.raises(InvalidInput, match="pool_id"):
        AgentPool("", runtime=runtime())
    with pytest.raises(InvalidInput, match="runtime: expected AgentRuntime"):
        AgentPool(POOL, runtime=object())  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="strict: expected a bool"):
        AgentPool(POOL, runtime=runtime(), strict=1)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="store: expected a fastpool store"):
        AgentPool(POOL, runtime=runtime(), store=object())  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="journal: expected a RunJournal"):
        AgentRuntime(journal=object())  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="event_bus: expected an AgentEventBus"):
        AgentRuntime(event_bus=InMemoryRunJournal())  # type: ignore[arg-type]


def test_construction_opens_the_pool_and_writes_nothing_else() -> None:
    store = InMemoryAgentPoolStore()
    pool = AgentPool(POOL, runtime=runtime(), store=store, wake_policy=AgentPoolWakePolicy(envelope_only=False))
    assert [record.payload.TYPE for record in store.watch(POOL)] == ["pool_opened"]
    assert pool.snapshot().wake_policy.envelope_only is False and pool.store is store
    with pytest.raises(AgentError, match="agent pool store config conflicts with existing pool"):
        AgentPool(POOL, runtime=runtime(), store=store)  # the default config differs
    assert AgentPool(POOL, runtime=runtime()).snapshot().cursor.sequence == 1  # a private in-memory store


def test_the_runtime_counts_journal_sequences_across_its_pools() -> None:
    shared = runtime()
    first, second = pool_with("run.a", runtime=shared), AgentPool("pool.second", runtime=shared)
    second.join_run(AgentPoolMember(run_id="run.z", agent_id="agent.z"))
    journal = shared.journal
    assert isinstance(journal, InMemoryRunJournal)
    assert [record.journal_seq for _, record in journal.entries] == [1, 2, 3, 4]
    assert shared.next_journal_seq() == 5 and first.pool_id == POOL


# -------------------------------------------------------------------- the in-memory journal


def test_the_journal_refuses_what_the_rust_test_journal_refuses() -> None:
    pool = pool_with("run.a", "run.b")
    journal = pool.runtime.journal
    assert isinstance(journal, InMemoryRunJournal)
    _, record = journal.entries[-1]
    with pytest.raises(AgentError) as caught:
        journal.append(record)  # journal_seq 3 again
    assert caught.value.message == "journal_seq must be monotonic within fake journal"
    with pytest.raises(AgentError, match="journal record schema version mismatch"):
        journal.append(record.replace(journal_seq=4, journal_schema_version=2))
    journal.fail_next_append("journal down")
    with pytest.raises(AgentError) as failed:
        journal.append(record.replace(journal_seq=4))
    assert (failed.value.kind, failed.value.retry) == (
        AgentErrorKind.JOURNAL_FAILURE,
        RetryClassification.REPAIR_NEEDED,
    )
    assert journal.append(record.replace(journal_seq=4)) == "journal.4"  # only the next append failed
    assert len(journal) == 4


# -------------------------------------------------------------------- the in-memory bus


def test_the_bus_numbers_frames_and_subscriptions_resume_after_a_cursor() -> None:
    pool = pool_with("run.a", "run.b")
    everything = EventFilter()
    frames = list(pool.subscribe(everything))
    assert [frame.cursor.event_seq for frame in frames] == [1, 2, 3]
    assert {frame.cursor.scope.filter_fingerprint for frame in frames} == {
        pool.compile_scoped_filter(everything).filter_fingerprint
    }  # type: ignore[union-attr]
    assert [frame.event.envelope.event_kind for frame in pool.subscribe(everything, frames[1].cursor)] == [
        EventKind.AGENT_POOL_RUN_JOINED
    ]
    # A cursor of another stream, or of the filter before a member joined (another fingerprint).
    published = pool.runtime.event_bus.frames[0]  # type: ignore[union-attr]
    with pytest.raises(AgentError, match="cursor scope mismatch for requested event stream"):
        list(pool.subscribe(everything, published.cursor))
    pool.join_run(AgentPoolMember(run_id="run.c", agent_id="agent.c"))
    with pytest.raises(AgentError, match="cursor scope mismatch"):
        list(pool.subscribe(everything, frames[0].cursor))


def test_a_backpressure_queue_is_refused() -> None:
    pool = pool_with("run.a")
    queue = SubscriberQueueConfig(overflow=SubscriberOverflowPolicy.BACKPRESSURE_CALLER)
    with pytest.raises(AgentError, match="InvalidOverflowPolicy: backpressure_caller is rejected"):
        list(pool.subscribe(EventFilter(queue=queue)))


def test_the_bus_renumbers_a_host_frame() -> None:
    pool = pool_with("run.a")
    bus = pool.runtime.event_bus
    assert isinstance(bus, InMemoryAgentEventBus)
    own = bus.frames[0]
    bus.publish(own)  # published again: a new number, the cursor follows
    assert (bus.frames[-1].event.envelope.event_seq, bus.frames[-1].cursor.event_seq) == (3, 3)
    with pytest.raises(InvalidInput, match="frame: expected EventFrame"):
        bus.publish(own.event)  # type: ignore[arg-type]


def bounded(policy: SubscriberOverflowPolicy, capacity: int, reserve: int, kinds: list[EventKind]) -> list[EventFrame]:
    """The frames a subscription with this queue gets over frames of ``kinds`` (one pool's events, renamed)."""
    bus = InMemoryAgentEventBus()
    template = pool_with("run.a").runtime.event_bus.frames[0]  # type: ignore[union-attr]
    for n, kind in enumerate(kinds):
        envelope = template.event.envelope.replace(event_kind=kind, event_id=f"event.{n}")
        bus.publish(template.replace(event=template.event.replace(envelope=envelope)))
    queue = SubscriberQueueConfig(capacity=capacity, terminal_reserve=reserve, overflow=policy)
    return list(bus.subscribe_filtered(EventFilter(queue=queue).compile()))


PROGRESS, PLAIN, TERMINAL = EventKind.USAGE_RECORDED, EventKind.RUN_STARTED, EventKind.RUN_COMPLETED


def test_drop_non_terminal_keeps_terminal_frames_and_notes_the_drops() -> None:
    frames = bounded(SubscriberOverflowPolicy.DROP_NON_TERMINAL, 3, 1, [PLAIN, PLAIN, PLAIN, PLAIN, TERMINAL, TERMINAL])
    assert [frame.event.envelope.event_id for frame in frames] == ["event.1", "event.4", "event.5"]
    # event.2 and event.3 found no room; event.0 made room for event.5 (the oldest non-terminal).
    first, second = frames[1].overflow, frames[2].overflow
    assert first is not None and second is not None and frames[0].overflow is None
    assert (first.dropped_count, first.gap_start.event_id, first.gap_end.event_id) == (2, "event.2", "event.3")  # type: ignore[union-attr]
    assert first.reason is EventOverflowReason.POLICY_DROPPED_NON_TERMINAL and first.terminal_preserved
    assert (second.dropped_count, second.gap_start.event_id, second.gap_end.event_id) == (1, "event.0", "event.0")  # type: ignore[union-attr]
    # Terminal reserve as large as the queue: a scan never sees a non-terminal frame (COORDINATOR.md §5.3).
    only = bounded(SubscriberOverflowPolicy.DROP_NON_TERMINAL, 1, 1, [PLAIN, TERMINAL])
    assert [frame.event.envelope.event_id for frame in only] == ["event.1"]


def test_summarize_and_fail_subscriber() -> None:
    summary = bounded(SubscriberOverflowPolicy.SUMMARIZE_AND_CONTINUE, 4, 1, [PROGRESS, PROGRESS, PLAIN])
    assert [frame.event.envelope.event_id for frame in summary] == ["event.1", "event.2"]
    assert summary[0].event.payload.redacted_summary == "redacted progress summary for 2 dropped progress frames"  # type: ignore[union-attr]
    assert summary[0].overflow.dropped_count == 2  # type: ignore[union-attr]
    failed = bounded(SubscriberOverflowPolicy.FAIL_SUBSCRIBER, 2, 1, [PLAIN, PLAIN, PLAIN, TERMINAL])
    assert [frame.event.envelope.event_id for frame in failed] == ["event.0"]
    assert failed[0].overflow.reason is EventOverflowReason.SUBSCRIBER_QUEUE_FULL  # type: ignore[union-attr]
    # drop_progress: the plain frame evicts the progress one; the later progress frame is dropped,
    # and the last notice (as in Rust) replaces the first on the last frame.
    progress = bounded(SubscriberOverflowPolicy.DROP_PROGRESS, 2, 1, [PROGRESS, PLAIN, PROGRESS])
    assert [frame.event.envelope.event_id for frame in progress] == ["event.1"]
    notice = progress[0].overflow
    assert notice is not None and (notice.dropped_count, notice.gap_start.event_id) == (1, "event.2")  # type: ignore[union-attr]


# -------------------------------------------------------------------- matching (COORDINATOR.md §5.1)


def test_matching_rules() -> None:
    envelope = pool_with("run.a").runtime.event_bus.frames[1].event.envelope  # type: ignore[union-attr]
    assert envelope_matches(EventFilter(), envelope)
    assert not envelope_matches(EventFilter(run_ids=()), envelope)  # an empty Include never matches
    assert not envelope_matches(EventFilter(session_ids=("session.a",)), envelope)  # no session id
    assert not envelope_matches(EventFilter(related_entity_kinds=("run",)), envelope)  # no related refs
    assert envelope_matches(EventFilter(tags=("other", "feature:agent_pool")), envelope)
    assert not envelope_matches(EventFilter(terminal_only=True), envelope)
    assert envelope_matches(EventFilter(destination_kinds=("agent",), kinds=(envelope.event_kind,)), envelope)


def test_a_runtime_with_run_info_stamps_session_and_fingerprint() -> None:
    class Known(AgentRuntime):
        def run_info(self, run_id: str) -> tuple[str | None, str] | None:
            return ("session.1", "fingerprint.package") if run_id == "run.a" else None

    journal, bus = InMemoryRunJournal(), InMemoryAgentEventBus()
    pool = pool_with("run.a", "run.b", runtime=Known(journal=journal, event_bus=bus))
    condition = WakeCondition(
        condition_id="w.session",
        run_id="run.b",
        filter=EventFilter(session_ids=("session.1",), kinds=(EventKind.RUN_MESSAGE_DELIVERED,)),
        idempotency_key="key.w",
    )
    assert pool.suspend_until("run.b", condition).status is WakeRegistrationStatus.REGISTERED
    pool.send(message(1))
    assert pool.poll_wake("w.session").status is WakeRegistrationStatus.TRIGGERED
    record = journal.entries[0][1]
    assert (record.session_id, record.event_index.session_id, record.runtime_package_fingerprint) == (
        "session.1",
        "session.1",
        "fingerprint.package",
    )
    assert bus.frames[0].event.envelope.session_id == "session.1"
    assert bus.frames[2].event.envelope.session_id is None  # run.b: unknown to the runtime


# -------------------------------------------------------------------- threads and long ids


def test_threads_sharing_a_runtime_journal_in_sequence_order() -> None:
    pool = pool_with("run.a", "run.b")
    errors: list[BaseException] = []

    def sender(worker: int) -> None:
        try:
            for n in range(25):
                assert pool.send(message(worker * 100 + n)).status is MessageStatus.DELIVERED
        except BaseException as error:  # collected: a failing thread must fail the test
            errors.append(error)

    threads = [threading.Thread(target=sender, args=(worker,)) for worker in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    journal = pool.runtime.journal
    assert isinstance(journal, InMemoryRunJournal)
    assert [record.journal_seq for _, record in journal.entries] == list(range(1, 3 + 300 + 1))
    assert len(pool.snapshot().messages) == 150


def test_ids_too_long_for_derived_ids_fail_where_rust_panics() -> None:
    # A message id of 494 bytes: its effect id would exceed 512. Refused before anything is written.
    pool = pool_with("run.a", "run.b")
    long_id = "m" * 494
    before = pool.snapshot().cursor
    with pytest.raises(InvalidInput, match="too long for the derived effect id"):
        pool.send(message(1).replace(message_id=long_id))
    assert pool.snapshot().cursor == before
    assert pool.send(message(2).replace(message_id="m" * 493)).status is MessageStatus.DELIVERED
    # A pool id of 495 bytes: the first event id overflows after the created record was journaled.
    journal = InMemoryRunJournal()
    long_pool = AgentPool("p" * 495, runtime=runtime(journal=journal))
    with pytest.raises(InvalidInput, match="pool_id: too long for the derived event id"):
        long_pool.join_run(AgentPoolMember(run_id="run.a", agent_id="agent.a"))
    assert [record.payload.lifecycle_status.value for _, record in journal.entries] == ["created"]  # type: ignore[union-attr]
    assert long_pool.snapshot().members == ()


def test_the_store_config_is_read_once() -> None:
    store = InMemoryAgentPoolStore()
    store.open_pool(POOL, AgentPoolStoreConfig())
    pool = AgentPool(POOL, runtime=runtime(), store=store)
    assert pool.scope_filter(EventFilter()).payload_access.value == "envelope_only"
    assert repr(pool).startswith("AgentPool('pool.unit'")
