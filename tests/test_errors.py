"""Errors name what failed: the ids ride on the error and in ``str(error)``, while ``message``
and the wire JSON stay Rust's byte for byte (issue 25)."""

from __future__ import annotations

import copy
import pickle

import pytest

from fastpool import (
    AgentError,
    AgentErrorKind,
    AgentPool,
    AgentPoolMember,
    AgentRuntime,
    InMemoryAgentEventBus,
    InMemoryRunJournal,
    InvalidInput,
    RetryClassification,
    RunAddress,
    RunMessage,
    wire,
)

NOT_A_MEMBER = "run is not a member of this agent pool"


def named() -> AgentError:
    return AgentError(
        AgentErrorKind.INVALID_STATE_TRANSITION,
        RetryClassification.NOT_RETRYABLE,
        NOT_A_MEMBER,
        ids={"pool_id": "team", "run_id": "run.ghost"},
    )


def test_the_ids_show_in_str_but_not_in_the_message_the_display_or_the_wire() -> None:
    error = named()
    plain = AgentError(AgentErrorKind.INVALID_STATE_TRANSITION, RetryClassification.NOT_RETRYABLE, NOT_A_MEMBER)
    assert str(error) == f"InvalidStateTransition: {NOT_A_MEMBER} (pool_id='team', run_id='run.ghost')"
    assert (error.pool_id, error.run_id) == ("team", "run.ghost")
    assert error.message == NOT_A_MEMBER
    assert error.display == str(plain) == f"InvalidStateTransition: {NOT_A_MEMBER}"
    assert wire.encode(error) == wire.encode(plain)
    assert error == plain  # equal as Rust compares them: the ids are not part of the value
    assert plain.ids == {} and plain.pool_id is None


def test_the_ids_survive_pickle_and_copy() -> None:
    for error in (named(), InvalidInput("pool_id: empty", ids={"pool_id": "x"})):
        for again in (pickle.loads(pickle.dumps(error)), copy.copy(error)):
            assert type(again) is type(error)
            assert (again.ids, str(again)) == (error.ids, str(error))


def test_invalid_input_prints_as_invalid_input_and_displays_as_rust_would() -> None:
    error = InvalidInput("pool_id: expected an identifier string, got int")
    assert str(error) == "invalid input: pool_id: expected an identifier string, got int"
    assert error.display == "InvalidStateTransition: pool_id: expected an identifier string, got int"
    assert str(InvalidInput("x", ids={"pool_id": "p"})) == "invalid input: x (pool_id='p')"


def test_the_coordinator_names_the_run_and_the_pool_that_is_not_a_member() -> None:
    runtime = AgentRuntime(journal=InMemoryRunJournal(), event_bus=InMemoryAgentEventBus())
    pool = AgentPool("pool.errors", runtime=runtime)
    pool.join_run(AgentPoolMember(run_id="run.a", agent_id="agent.a"))
    with pytest.raises(AgentError) as raised:
        pool.leave_run("run.ghost")
    assert raised.value.message == NOT_A_MEMBER
    assert raised.value.ids == {"pool_id": "pool.errors", "run_id": "run.ghost"}
    assert "run_id='run.ghost'" in str(raised.value)
    with pytest.raises(AgentError) as raised:
        pool.send(
            RunMessage(
                message_id="m.1", from_="run.ghost", to=RunAddress.run("run.a"), content_ref="c", idempotency_key="k"
            )
        )
    assert (raised.value.message, raised.value.ids) == (NOT_A_MEMBER, {"pool_id": "pool.errors", "run_id": "run.ghost"})
