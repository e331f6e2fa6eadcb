"""The ``races`` flow's interleavings, where Rust writes twice, end atomic here (both modes).

Two hosts on one pool (two store objects on one file, or one in-memory store), the second
host's call run at the very moment the Rust flow runs it: after the first host has checked
and before it writes. Rust then records two ``pool_created``, two deliveries of one message,
two registrations of one wake, and a trigger after a cancel (``races`` steps 3-11); fastpool
records each once, and never a trigger after a cancel. The losing host has journaled and
published its transition already (README, "The coordinator").
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from coordinator_flows import load

from fastpool import (
    AgentError,
    AgentPool,
    AgentPoolMember,
    AgentRuntime,
    InMemoryAgentEventBus,
    InMemoryAgentPoolStore,
    InMemoryRunJournal,
    MessageStatus,
    RunMessage,
    SqliteAgentPoolStore,
    WakeCondition,
    WakeRegistrationStatus,
    wire,
)

POOL = "pool.race"


class Hooked:
    """A store that runs a hook right before the first call of one method whose arguments it accepts."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.hooks: list[tuple[str, Callable[..., bool], Callable[[], Any]]] = []

    def before(self, name: str, action: Callable[[], Any], when: Callable[..., bool] = lambda *a, **k: True) -> None:
        self.hooks.append((name, when, action))

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._store, name)
        if name.startswith("_") or not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            for hook in list(self.hooks):
                if hook[0] == name and hook[1](*args, **kwargs):
                    self.hooks.remove(hook)
                    hook[2]()
            return attribute(*args, **kwargs)

        return call


class Host:
    def __init__(self, store: Any, strict: bool) -> None:
        self.journal = InMemoryRunJournal()
        self.bus = InMemoryAgentEventBus()
        self.store = Hooked(store)
        self.pool = AgentPool(
            POOL, runtime=AgentRuntime(journal=self.journal, event_bus=self.bus), store=self.store, strict=strict
        )

    def kinds(self) -> list[str]:
        return [frame.event.envelope.event_kind.value for frame in self.bus.frames]


@pytest.fixture(params=["sqlite", "memory"])
def stores(request: pytest.FixtureRequest, tmp_path: Path, engine: Any) -> Any:
    if request.param == "memory":
        shared = InMemoryAgentPoolStore(engine=engine)
        yield shared, shared
        return
    path = tmp_path / "race.sqlite"
    first, second = SqliteAgentPoolStore(path, engine=engine), SqliteAgentPoolStore(path, engine=engine)
    yield first, second
    first.close()
    second.close()


CALLS = {line["step"]: line for line in load("races") if line["line"] == "call"}


def arguments(step: int) -> dict[str, Any]:
    """The arguments of the flow's call ``step``, decoded."""
    raw = json.loads(CALLS[step]["args_json"])
    decoded = {"member": AgentPoolMember, "message": RunMessage, "condition": WakeCondition}
    return {
        name: wire.decode(decoded[name], json.dumps(value)) if name in decoded else value for name, value in raw.items()
    }


def registering(*args: Any, **kwargs: Any) -> bool:
    """A ``record_wake_once`` that registers (no ``expected``)."""
    return kwargs.get("expected") is None


def comparing(*args: Any, **kwargs: Any) -> bool:
    """A ``*_once`` call that moves on from a receipt or registration read before."""
    return kwargs.get("expected") is not None


def triggering(*args: Any, **kwargs: Any) -> bool:
    return comparing(*args, **kwargs) and args[3].status is WakeRegistrationStatus.TRIGGERED


def record_kinds(store: Any) -> list[tuple[str, str]]:
    out = []
    for record in store.watch(POOL):
        payload = record.payload
        if payload.TYPE == "run_message":
            out.append((payload.stored.message.message_id, payload.stored.receipt.status.value))
        elif payload.TYPE == "wake":
            out.append((payload.stored.condition.condition_id, payload.stored.registration.status.value))
        else:
            out.append((payload.TYPE, ""))
    return out


@pytest.mark.parametrize("strict", [False, True], ids=["parity", "strict"])
def test_the_races_flow_ends_with_one_record_per_transition(stores: Any, strict: bool) -> None:
    a, b = Host(stores[0], strict), Host(stores[1], strict)

    # Steps 3-4: both hosts join a pool not yet created; B's whole join lands after A's check.
    a.store.before("record_pool_created_once", lambda: b.pool.join_run(**arguments(4)))
    a.pool.join_run(**arguments(3))

    # Steps 5-6: both send m.1; B's send lands after A's dedupe found nothing.
    sent = arguments(5)["message"]
    b_receipt: list[Any] = []
    a.store.before("record_message_once", lambda: b_receipt.append(b.pool.send(sent)))
    a_receipt = a.pool.send(sent)
    assert a_receipt == b_receipt[0] and a_receipt.status is MessageStatus.DELIVERED  # B's delivery, returned

    # Steps 7-8: both register w.1; B's registration lands after A's dedupe found nothing.
    b_registration: list[Any] = []
    a.store.before("record_wake_once", lambda: b_registration.append(b.pool.suspend_until(**arguments(8))), registering)
    assert a.pool.suspend_until(**arguments(7)) == b_registration[0]

    # Steps 9-11: w.2 waits for run.b's delivered messages; A's send of m.2 reads it registered,
    # then B cancels it before A's trigger is written.
    a.pool.suspend_until(**arguments(9))
    a.store.before("record_wake_once", lambda: b.pool.cancel_wake("w.2"), triggering)
    a.pool.send(**arguments(10))
    assert not a.store.hooks, "every interleaving ran"

    records = record_kinds(stores[0])
    assert records == [
        ("pool_opened", ""),
        ("pool_created", ""),
        ("member_joined", ""),  # run.b
        ("member_joined", ""),  # run.a
        ("m.1", "accepted"),
        ("m.1", "delivered"),
        ("w.1", "registered"),
        ("w.2", "registered"),
        ("m.2", "accepted"),
        ("m.2", "delivered"),
        ("w.2", "cancelled"),
    ]
    assert a.pool.snapshot().wakes[1].registration.status is WakeRegistrationStatus.CANCELLED
    # What the losing host had journaled and published before its write lost: in the default
    # mode, as Rust, its created step and its transitions; with strict=True no created step.
    created = ["agent_pool_created"] if not strict else []
    assert a.kinds() == [
        *created,
        "agent_pool_run_joined",
        "run_message_accepted",  # lost to B's delivery
        "wake_condition_registered",  # lost to B's registration
        "wake_condition_registered",  # w.2
        "run_message_accepted",
        "run_message_delivered",
        "wake_condition_triggered",  # lost to B's cancel
    ]
    assert b.kinds() == [
        "agent_pool_created",
        "agent_pool_run_joined",
        "run_message_accepted",
        "run_message_delivered",
        "wake_condition_registered",
        "wake_condition_cancelled",
    ]
    assert [cursor for cursor, _ in a.journal.entries] == [f"journal.{n}" for n in range(1, len(a.kinds()) + 1)]


def test_strict_resume_of_an_accepted_delivery_races_once(stores: Any) -> None:
    """With strict=True a host that finds ``accepted`` delivers it; two doing so deliver once."""
    a, b = Host(stores[0], True), Host(stores[1], True)
    a.pool.join_run(**arguments(3))
    b.pool.join_run(**arguments(4))
    sent = arguments(5)["message"]
    found: list[Any] = []
    # B's send lands between A's accepted and A's delivered: B finds accepted and resumes it.
    a.store.before("record_message_once", lambda: found.append(b.pool.send(sent)), comparing)
    receipt = a.pool.send(sent)
    assert receipt == found[0] and receipt.status is MessageStatus.DELIVERED
    assert [r for r in record_kinds(stores[0]) if r[0] == "m.1"] == [("m.1", "accepted"), ("m.1", "delivered")]


def test_a_strict_cancel_that_loses_to_a_trigger_is_refused(stores: Any) -> None:
    a, b = Host(stores[0], True), Host(stores[1], True)
    a.pool.join_run(**arguments(3))
    b.pool.join_run(**arguments(4))
    a.pool.suspend_until(**arguments(9))
    b.store.before("record_wake_once", lambda: a.pool.send(**arguments(10)), comparing)
    with pytest.raises(AgentError, match="'w.2' is triggered: only a registered wake can be cancelled"):
        b.pool.cancel_wake("w.2")
    assert [r for r in record_kinds(stores[0]) if r[0] == "w.2"] == [("w.2", "registered"), ("w.2", "triggered")]
    assert Counter(b.kinds())["wake_condition_cancelled"] == 1  # journaled and published before it lost


def test_leave_run_missing_ok_when_another_host_removed_the_run_first(tmp_path: Path, engine: Any) -> None:
    """Two hosts removing one run: the second one's missing_ok=True returns None and writes nothing."""
    path = tmp_path / "pools.sqlite"
    with SqliteAgentPoolStore(path, engine=engine) as first, SqliteAgentPoolStore(path, engine=engine) as second:
        hosts = [
            AgentPool(
                POOL, runtime=AgentRuntime(journal=InMemoryRunJournal(), event_bus=InMemoryAgentEventBus()), store=s
            )
            for s in (first, second)
        ]
        hosts[0].join_run(AgentPoolMember(run_id="run.a", agent_id="agent.a"))
        assert hosts[1].members()[0].run_id == "run.a"  # the second host has seen the member
        assert hosts[0].leave_run("run.a").run_id == "run.a"
        bus = hosts[1].runtime.event_bus
        assert isinstance(bus, InMemoryAgentEventBus)
        published = len(bus.frames)
        assert hosts[1].leave_run("run.a", missing_ok=True) is None
        assert len(bus.frames) == published  # no run_left of its own
        with pytest.raises(AgentError) as raised:
            hosts[1].leave_run("run.a")
        assert raised.value.run_id == "run.a"
        assert [r.payload.TYPE for r in second.watch(POOL)] == [
            "pool_opened",
            "pool_created",
            "member_joined",
            "member_left",
        ]
        with pytest.raises(AgentError, match="missing_ok"):
            hosts[1].leave_run("run.a", missing_ok=1)  # type: ignore[call-overload]
