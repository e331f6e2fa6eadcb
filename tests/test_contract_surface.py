"""The contract is written once, in ``protocol.AgentPoolStore``: every store and the async
wrapper follow it method by method, with the same parameters (names, kinds, defaults and
annotations) and results, so a method or a parameter added to one and not the others fails here."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from fastpool import InMemoryAgentPoolStore, SqliteAgentPoolStore
from fastpool._base import StoreBase
from fastpool.aio import AsyncAgentPoolStore
from fastpool.postgres import PostgresAgentPoolStore
from fastpool.protocol import CONDITIONAL_WRITES, AgentPoolStore

# What the async wrapper returns differently, by design: ``watch`` reads its records in one go.
ASYNC_RESULTS = {"watch": "list[AgentPoolStoreRecord]"}
METHODS = sorted(
    name for name, value in vars(AgentPoolStore).items() if inspect.isfunction(value) and not name.startswith("_")
)


def signature(function: Any) -> inspect.Signature:
    return inspect.signature(function)


def test_the_conditional_writes_are_part_of_the_protocol() -> None:
    assert set(CONDITIONAL_WRITES) <= set(METHODS)
    assert "expected" in signature(AgentPoolStore.record_message_once).parameters
    assert "expected" in signature(AgentPoolStore.record_wake_once).parameters


@pytest.mark.parametrize("store", [StoreBase, SqliteAgentPoolStore, InMemoryAgentPoolStore, PostgresAgentPoolStore])
@pytest.mark.parametrize("name", METHODS)
def test_every_store_has_the_protocols_methods_as_written(store: type, name: str) -> None:
    assert signature(getattr(store, name)) == signature(getattr(AgentPoolStore, name))


@pytest.mark.parametrize("name", METHODS)
def test_the_async_wrapper_has_each_method_as_a_coroutine_with_the_same_parameters(name: str) -> None:
    method = getattr(AsyncAgentPoolStore, name, None)
    assert method is not None, f"AsyncAgentPoolStore lacks {name}"
    assert inspect.iscoroutinefunction(method), f"AsyncAgentPoolStore.{name} is not a coroutine function"
    wrapped, written = signature(method), signature(getattr(AgentPoolStore, name))
    assert wrapped.parameters == written.parameters
    assert wrapped.return_annotation == ASYNC_RESULTS.get(name, written.return_annotation)
