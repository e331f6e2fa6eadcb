"""The Rust bench mix: the records the Rust store's own benchmark was measured on.

Record ``j`` (1-based after ``pool_opened``) is chosen by ``j mod 20``: 0-4 a ``member_joined``
(64 run ids re-joining, 16 agents, one permission policy ref, a shard topic and
``topic.all``), 5-18 a ``run_message`` (``RunMessage::new`` run to run, one correlation entry,
each message ``accepted`` then ``delivered``), 19 a ``wake`` (a 60 s timeout, a filter on
another run's ``run_message_delivered``, each condition ``registered`` then ``triggered``).
About 539 JSON bytes per record, as in Rust.

>>> payloads = rust_mix_payloads("pool.rust", 40)
>>> [p.TYPE for p in payloads[:7]]
['pool_opened', 'member_joined', 'member_joined', 'member_joined', 'member_joined', 'run_message', 'run_message']
"""

from __future__ import annotations

from typing import Any

from ..enums import EventFamily, EventKind, MessageStatus, PolicyKind, WakeRegistrationStatus
from ..model import (
    AgentPoolMember,
    AgentPoolStoreConfig,
    AgentPoolStoredMessage,
    AgentPoolStoredWake,
    CorrelationEntry,
    EventCorrelation,
    EventFilter,
    MemberJoined,
    MessageReceipt,
    MessageRecorded,
    PolicyRef,
    PoolOpened,
    RunAddress,
    RunMessage,
    WakeCondition,
    WakeRecorded,
    WakeRegistration,
)

__all__ = ["rust_mix_payloads"]

RUNS = 64
_POLICY = PolicyRef.with_kind(PolicyKind.PERMISSION, "policy.pool.member")


def _run(i: int) -> str:
    return f"run.{i % RUNS:05d}"


def _member(j: int) -> MemberJoined:
    return MemberJoined(
        member=AgentPoolMember(
            run_id=_run(j),
            agent_id=f"agent.worker.{j % 16:02d}",
            policy_refs=(_POLICY,),
            topics=(f"topic.shard.{j % 8:02d}", "topic.all"),
        )
    )


def _messages(i: int) -> tuple[MessageRecorded, MessageRecorded]:
    sender, target = _run(i), _run(i + 1)
    message = RunMessage(
        message_id=f"msg.{i:07d}",
        from_=sender,
        to=RunAddress.run(target),
        content_ref=f"content.{i:07d}",
        correlation=EventCorrelation(entries=(CorrelationEntry(key="trace", value=f"t{i:07d}"),)),
        idempotency_key=f"idem.msg.{i:07d}",
    )
    return tuple(  # type: ignore[return-value]
        MessageRecorded(
            stored=AgentPoolStoredMessage(
                message=message,
                receipt=MessageReceipt(
                    message_id=message.message_id, status=status, delivered_to=(target,), journal_cursor=f"journal.{i}"
                ),
            )
        )
        for status in (MessageStatus.ACCEPTED, MessageStatus.DELIVERED)
    )


def _wakes(i: int) -> tuple[WakeRecorded, WakeRecorded]:
    owner = _run(i)
    criteria = EventFilter(
        run_ids=(_run(i + 1),), families=(EventFamily.AGENT_POOL,), kinds=(EventKind.RUN_MESSAGE_DELIVERED,)
    )
    condition = WakeCondition(
        condition_id=f"wake.{i:06d}",
        run_id=owner,
        filter=criteria,
        timeout_millis=60_000,
        idempotency_key=f"idem.wake.{i:06d}",
    )
    compiled = criteria.compile()
    return tuple(  # type: ignore[return-value]
        WakeRecorded(
            stored=AgentPoolStoredWake(
                condition=condition,
                compiled_filter=compiled,
                registration=WakeRegistration(
                    condition_id=condition.condition_id, run_id=owner, status=status, journal_cursor=f"journal.w{i}"
                ),
            )
        )
        for status in (WakeRegistrationStatus.REGISTERED, WakeRegistrationStatus.TRIGGERED)
    )


def rust_mix_payloads(pool_id: str, n: int) -> list[Any]:
    """``pool_opened`` (default config) and ``n`` records of the Rust bench mix."""
    payloads: list[Any] = [PoolOpened(config=AgentPoolStoreConfig())]
    messages: list[Any] = []
    wakes: list[Any] = []
    for j in range(1, n + 1):
        slot = j % 20
        if slot < 5:
            payloads.append(_member(j))
        elif slot < 19:
            if not messages:
                messages.extend(_messages(len(payloads)))
            payloads.append(messages.pop(0))
        else:
            if not wakes:
                wakes.extend(_wakes(len(payloads)))
            payloads.append(wakes.pop(0))
    return payloads
