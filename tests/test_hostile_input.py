"""Bad input is refused cleanly (SPEC §2.2): ``InvalidInput`` and nothing written, never a crash.

Every argument of every store method gets random types and values: numbers, None, bytes,
containers, model objects of the wrong class, ``str`` subclasses, ids with control
characters or lone surrogates, over-long ids (ASCII and multi-byte), quotes and SQL
fragments, and very large but valid values. The call either succeeds, or raises an
``AgentError``: ``InvalidInput`` naming an offending argument when one was invalid, one of the
contract's own errors (unopened pool, config conflict, non-member leave) when every
argument was valid. A failed call leaves the pool exactly as it was (record counts and the
event-sequence table are compared before and after); a successful write appends exactly the
record it was given. ``SqliteAgentPoolStore`` (a file), ``InMemoryAgentPoolStore`` and
``PostgresAgentPoolStore`` (a schema of its own) run every case. Model constructors get the same treatment.
"""

from __future__ import annotations

import inspect
import math
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import apsw
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from store_helpers import PgTarget

import fastpool
from fastpool import (
    ANY,
    AgentError,
    AgentPoolMember,
    AgentPoolMessagePolicy,
    AgentPoolSnapshot,
    AgentPoolStoreConfig,
    AgentPoolStoreCursor,
    AgentPoolStoredMessage,
    AgentPoolStoredWake,
    AgentPoolStoreRecord,
    AgentPoolWakePolicy,
    CausalIds,
    CompiledEventFilter,
    CorrelationEntry,
    DestinationKind,
    DestinationRef,
    EntityKind,
    EntityRef,
    ErrorContext,
    EventCorrelation,
    EventFamily,
    EventFilter,
    InMemoryAgentPoolStore,
    InvalidInput,
    MemberJoined,
    MemberLeft,
    MessageReceipt,
    MessageRecorded,
    MessageResponseContract,
    MessageStatus,
    PolicyKind,
    PolicyRef,
    PoolCreated,
    PoolOpened,
    RunAddress,
    RunMessage,
    SourceKind,
    SourceRef,
    SqliteAgentPoolStore,
    SubscriberQueueConfig,
    WakeCondition,
    WakeRecorded,
    WakeRegistration,
    WakeRegistrationStatus,
    wire,
)
from fastpool.ids import ID_TYPES

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

#: Examples run, per test, reported at the end of the session by ``test_examples_ran``.
EXAMPLES: dict[str, int] = {}

HOME = "pool.home"  # opened, with a member, a message and a wake: most valid calls land here
SQL = "'; DROP TABLE agent_pool_records; --"
CONTRACT_MESSAGES = {
    "agent pool store has not opened this pool",
    "agent pool store config conflicts with existing pool",
    "run is not a member of this agent pool",
}


class StrSub(str):
    """A ``str`` subclass: valid as an id, stored as a plain ``str``."""


# -------------------------------------------------------------------- ids


def utf8_len(value: str) -> int:
    return len(value.encode("utf-8", "surrogatepass"))


def id_is_valid(value: Any) -> bool:
    """The rule of SPEC §2.1, written independently; a lone surrogate is not UTF-8 at all."""
    if not isinstance(value, str) or not 0 < utf8_len(value) <= 512:
        return False
    return not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or 0xD800 <= ord(c) <= 0xDFFF for c in value)


printable = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=30)
valid_ids = st.one_of(
    st.sampled_from(
        [
            SQL,
            "Robert'); DELETE FROM agent_pool_event_seq; --",
            'quote"d',
            "back\\slash",
            "emoji 😀 ok",
            " spaced ",
            "line\u2028sep",
            "nbsp\u00a0zw\u200bbom\ufeff",
            "a" * 512,
            "é" * 256,  # 512 bytes
            "😀" * 128,  # 512 bytes
            "x" * 509 + "€",  # 512 bytes
        ]
    ),
    printable,
    printable.map(StrSub),
    st.sampled_from([MessageStatus.ACCEPTED, PolicyKind.HOST]),  # str-valued enum members are str too
)
CONTROLS = [chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)]]
invalid_ids = st.one_of(
    st.just(""),
    st.just(StrSub("")),
    st.tuples(printable, st.sampled_from(CONTROLS), printable).map("".join),
    st.sampled_from(["a" * 513, "é" * 257, "€" * 171, "😀" * 129, "x" * 511 + "é", "pool\x00id"]),
    st.integers(513, 3000).map(lambda n: "p" * n),
    st.tuples(printable, st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), printable).map("".join),
)

# -------------------------------------------------------------------- values of every other kind


def hostile_scalars() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.integers(min_value=2**63 - 2, max_value=2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        st.binary(max_size=20),
        st.just(bytearray(b"pool.home")),
        st.just(b"pool.home"),
        st.just(memoryview(b"run.a")),
        st.lists(st.integers(), max_size=3),
        st.lists(printable, max_size=3),
        st.dictionaries(printable, st.integers(), max_size=3),
        st.just({"run_id": "run.a", "agent_id": "agent.a"}),
        st.just({"type": "member_joined"}),
        st.just(object()),
        st.just(ANY),
        st.just(math.nan),
        st.just(frozenset({"pool.home"})),
        st.just(("pool.home",)),
        st.just(AgentPoolMember),  # a class, not an instance
        st.just(print),
    )


def big_policy_refs(n: int) -> tuple[PolicyRef, ...]:
    return tuple(PolicyRef(kind=PolicyKind.HOST, id=f"policy.{i:04d}", version=f"v{i}") for i in range(n))


MEMBER = AgentPoolMember(run_id="run.a", agent_id="agent.a", topics=("topic.t",))
MESSAGE = RunMessage(
    message_id="m.1", from_="run.a", to=RunAddress.run("run.b"), content_ref="content.m.1", idempotency_key="key.m.1"
)
RECEIPT = MessageReceipt(message_id="m.1", status=MessageStatus.ACCEPTED)
CONDITION = WakeCondition(
    condition_id="wake.1", run_id="run.b", filter=EventFilter(run_ids=("run.a",)), idempotency_key="key.wake.1"
)
COMPILED = CONDITION.compile_envelope_filter()
REGISTRATION = WakeRegistration(condition_id="wake.1", run_id="run.b", status=WakeRegistrationStatus.REGISTERED)
CONFIG = AgentPoolStoreConfig()
OTHER_CONFIG = AgentPoolStoreConfig(
    message_policy=AgentPoolMessagePolicy(include_sender_in_pool_broadcast=True),
    wake_policy=AgentPoolWakePolicy(envelope_only=False),
)
BIG_CONFIG = AgentPoolStoreConfig(policy_refs=big_policy_refs(300))
BIG_MESSAGE = RunMessage(
    message_id="m.big" + "ü" * 200,
    from_=SQL,
    to=RunAddress.pool("é" * 256),
    content_ref="c" * 500,
    idempotency_key="key.big" + "😀" * 100,
    reply_to="m.1",
    response_contract=MessageResponseContract(expected_responses=2**32 - 1, timeout_millis=2**64 - 1),
    expires_at_millis=2**64 - 1,
    policy_refs=big_policy_refs(1000),
)
BIG_MEMBER = AgentPoolMember(
    run_id="run.big" + "é" * 250,
    agent_id=SQL,
    policy_refs=big_policy_refs(200),
    topics=tuple(f"topic.{i:04d}" for i in range(1000)),
)


@st.composite
def members(draw: st.DrawFn) -> AgentPoolMember:
    return AgentPoolMember(
        run_id=draw(st.one_of(st.just("run.a"), valid_ids)),
        agent_id=draw(valid_ids),
        topics=draw(st.lists(valid_ids, max_size=3)),
    )


@st.composite
def messages(draw: st.DrawFn) -> RunMessage:
    message_id = draw(st.one_of(st.just("m.1"), valid_ids))
    return RunMessage(
        message_id=message_id,
        from_=draw(valid_ids),
        to=draw(st.sampled_from([RunAddress.run, RunAddress.agent, RunAddress.topic, RunAddress.pool]))(
            draw(valid_ids)
        ),
        content_ref=draw(valid_ids),
        idempotency_key=draw(st.one_of(st.just("key.m.1"), valid_ids)),
        policy_refs=draw(st.lists(st.builds(PolicyRef.new, valid_ids), max_size=3)),
    )


@st.composite
def receipts(draw: st.DrawFn) -> MessageReceipt:
    return MessageReceipt(
        message_id=draw(valid_ids),
        status=draw(st.sampled_from(MessageStatus)),
        delivered_to=draw(st.lists(valid_ids, max_size=3)),
        journal_cursor=draw(st.none() | valid_ids),
    )


@st.composite
def conditions(draw: st.DrawFn) -> WakeCondition:
    return WakeCondition(
        condition_id=draw(st.one_of(st.just("wake.1"), valid_ids)),
        run_id=draw(valid_ids),
        filter=EventFilter(run_ids=tuple(draw(st.lists(valid_ids, max_size=2))), tags=(draw(st.text(max_size=5)),)),
        idempotency_key=draw(valid_ids),
        timeout_millis=draw(st.none() | st.integers(0, 2**64 - 1)),
    )


WRONG_MODELS = [
    MEMBER,
    MESSAGE,
    RECEIPT,
    CONDITION,
    COMPILED,
    REGISTRATION,
    CONFIG,
    AgentPoolStoreCursor(sequence=1),
    EventFilter(),
    PolicyRef.new("p"),
    MemberJoined(member=MEMBER),
    AgentPoolStoredMessage(message=MESSAGE, receipt=RECEIPT),
]


def other_models(right: type | tuple[type, ...]) -> st.SearchStrategy[Any]:
    return st.sampled_from([m for m in WRONG_MODELS if not isinstance(m, right)])


# -------------------------------------------------------------------- the arguments of each method


@dataclass(frozen=True)
class Arg:
    name: str
    valid: st.SearchStrategy[Any]
    invalid: st.SearchStrategy[Any]


def id_arg(name: str, common: str | None = None) -> Arg:
    valid = valid_ids if common is None else st.one_of(st.just(common), st.just(common), valid_ids)
    return Arg(name, valid, st.one_of(invalid_ids, hostile_scalars(), other_models(())))


def model_arg(name: str, cls: type, valid: st.SearchStrategy[Any]) -> Arg:
    return Arg(name, valid, st.one_of(hostile_scalars(), other_models(cls), invalid_ids))


POOL = id_arg("pool_id", HOME)
cursor_valid = st.one_of(
    st.none(),
    st.integers(0, 10),
    st.integers(0, 2**64 - 1),
    st.integers(2**63 - 1, 2**80),
    st.integers(0, 2**64 - 1).map(AgentPoolStoreCursor.new),
)
cursor_invalid = st.one_of(
    st.integers(max_value=-1),
    st.booleans(),
    st.floats(),
    st.just("3"),
    st.just(b"3"),
    st.just([3]),
    st.just({"sequence": 3}),
    st.just(MEMBER),
    st.just(object()),
)

METHODS: dict[str, list[Arg]] = {
    "open_pool": [
        POOL,
        model_arg("config", AgentPoolStoreConfig, st.sampled_from([CONFIG, CONFIG, OTHER_CONFIG, BIG_CONFIG])),
    ],
    "snapshot": [POOL],
    "record_pool_created": [POOL],
    "record_pool_created_once": [POOL],
    "join_member": [POOL, model_arg("member", AgentPoolMember, st.one_of(members(), st.just(BIG_MEMBER)))],
    "leave_member": [POOL, id_arg("run_id", "run.a")],
    "message_receipt": [POOL, id_arg("idempotency_key", "key.m.1")],
    "record_message": [
        POOL,
        model_arg("message", RunMessage, st.one_of(messages(), st.just(BIG_MESSAGE))),
        model_arg("receipt", MessageReceipt, receipts()),
    ],
    "wake_registration": [POOL, id_arg("idempotency_key", "key.wake.1")],
    "wake": [POOL, id_arg("condition_id", "wake.1")],
    "record_wake": [
        POOL,
        model_arg("condition", WakeCondition, conditions()),
        model_arg(
            "compiled_filter",
            CompiledEventFilter,
            st.just(COMPILED) | conditions().map(lambda c: c.compile_envelope_filter()),
        ),
        model_arg("registration", WakeRegistration, st.just(REGISTRATION)),
    ],
    "watch": [POOL, Arg("cursor", cursor_valid, cursor_invalid)],
    "next_event_sequence": [POOL],
    "members": [POOL],
    "member": [POOL, id_arg("run_id", "run.a")],
    "topics": [POOL],
    "topic_members": [POOL, id_arg("topic", "topic.t")],
    # The receipt (registration) often belongs to the message (condition), so that some calls append.
    "record_message_once": [
        POOL,
        model_arg("message", RunMessage, st.one_of(messages(), st.just(BIG_MESSAGE))),
        model_arg("receipt", MessageReceipt, st.one_of(st.just(RECEIPT), receipts())),
    ],
    "record_wake_once": [
        POOL,
        model_arg("condition", WakeCondition, conditions()),
        model_arg("compiled_filter", CompiledEventFilter, st.just(COMPILED)),
        model_arg("registration", WakeRegistration, st.just(REGISTRATION)),
    ],
}
#: Methods that append exactly one record when they succeed.
APPENDS = {"record_pool_created", "join_member", "leave_member", "record_message", "record_wake"}
#: Methods that append one record or none: ``*_once`` -> the method of the record it appends.
APPENDS_ONCE = {"record_message_once": "record_message", "record_wake_once": "record_wake"}
READS = {
    "snapshot",
    "message_receipt",
    "wake_registration",
    "wake",
    "watch",
    "members",
    "member",
    "topics",
    "topic_members",
}
ID_ARGS = {"pool_id", "run_id", "idempotency_key", "condition_id", "topic"}


def once_conflict(store: Any, method: str, values: dict[str, Any]) -> str | None:
    """The argument a ``*_once`` call with valid arguments must name in its ``InvalidInput``, if any:
    a receipt (registration) of another record, or a key already recorded for another one."""
    record, part, field = (
        ("message", "receipt", "message_id")
        if method == "record_message_once"
        else ("condition", "registration", "condition_id")
    )
    given = getattr(values[record], field)
    if getattr(values[part], field) != given:
        return f"{part}.{field}"
    lookup = store.message_receipt if method == "record_message_once" else store.wake_registration
    found = lookup(values["pool_id"], values[record].idempotency_key)
    return f"{record}.idempotency_key" if found is not None and getattr(found, field) != given else None


def test_every_protocol_method_is_covered() -> None:
    protocol = {name for name in vars(fastpool.AgentPoolStore) if not name.startswith("_")}
    assert protocol == set(METHODS)
    for name, args in METHODS.items():
        # The positional ones: keyword-only options (expected=) are test_conditional_writes'.
        signature = inspect.signature(getattr(fastpool.AgentPoolStore, name))
        parameters = [p.name for p in signature.parameters.values() if p.kind is not p.KEYWORD_ONLY][1:]
        assert parameters == [arg.name for arg in args], name


# -------------------------------------------------------------------- the stores under test


#: Where a durable store keeps its tables: an SQLite file or a PostgreSQL schema (None: memory).
Target = Path | PgTarget | None


class Observer:
    """What a call may have changed: per-pool record counts, and for durable stores the raw tables."""

    def __init__(self, store: Any, target: Target) -> None:
        self.store = store
        self.db = apsw.Connection(str(target)) if isinstance(target, Path) else None
        self.pg = target if isinstance(target, PgTarget) else None

    def query(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if self.pg is not None:
            return self.pg.query(query, params)
        assert self.db is not None
        return [tuple(row) for row in self.db.execute(query, params).fetchall()]

    def pool_records(self, pool_id: str) -> int:
        if self.db is None and self.pg is None:
            return len(list(self.store.watch(pool_id)))
        return int(self.query("SELECT count(*) FROM agent_pool_records WHERE pool_id = ?", (pool_id,))[0][0])

    def state(self, pool_id: Any) -> tuple[Any, ...]:
        pools = [HOME] + ([pool_id] if id_is_valid(pool_id) and pool_id != HOME else [])
        counts = tuple(self.pool_records(p) for p in pools)
        if self.db is None and self.pg is None:
            return counts
        total = self.query("SELECT count(*) FROM agent_pool_records")[0][0]
        sequences = tuple(self.query("SELECT pool_id, seq FROM agent_pool_event_seq ORDER BY pool_id"))
        return counts, total, sequences

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
        if self.pg is not None:
            self.pg.close()


def make_store(kind: str, directory: Path, request: pytest.FixtureRequest | None = None) -> tuple[Any, Target]:
    """A store of ``kind`` with HOME filled in; PostgreSQL needs the test's ``request``."""
    target: Target
    if kind == "memory":
        store: Any = InMemoryAgentPoolStore()
        target = None
    elif kind == "postgres":
        assert request is not None
        target = PgTarget(request.getfixturevalue("pg_server").conninfo, request.getfixturevalue("pg_schema"))
        store = target.store(busy_timeout=10.0)
    else:
        target = directory / "hostile.sqlite"
        store = SqliteAgentPoolStore(target, busy_timeout=10.0)
    store.open_pool(HOME, CONFIG)
    store.join_member(HOME, MEMBER)
    store.record_message(HOME, MESSAGE, RECEIPT)
    store.record_wake(HOME, CONDITION, COMPILED, REGISTRATION)
    return store, target


def cold_store(target: Target) -> Any:
    """Another store object on the same tables, with nothing cached."""
    return target.store() if isinstance(target, PgTarget) else SqliteAgentPoolStore(target)


def check_written(store: Any, method: str, pool_id: str, values: dict[str, Any], result: Any) -> None:
    """A successful append wrote exactly the record it was given, at the cursor it returned."""
    cursor = result[1] if method == "leave_member" else result
    assert isinstance(cursor, AgentPoolStoreCursor)
    records = list(store.watch(pool_id, cursor.sequence - 1))
    assert [r.cursor for r in records] == [cursor]
    payload = records[0].payload
    expected: Any
    if method == "record_pool_created":
        expected = PoolCreated()
    elif method == "join_member":
        expected = MemberJoined(member=values["member"])
    elif method == "leave_member":
        assert result[0].run_id == values["run_id"]
        expected = MemberLeft(member=result[0])
    elif method == "record_message":
        expected = MessageRecorded(stored=AgentPoolStoredMessage(message=values["message"], receipt=values["receipt"]))
    else:
        expected = WakeRecorded(
            stored=AgentPoolStoredWake(
                condition=values["condition"],
                compiled_filter=values["compiled_filter"],
                registration=values["registration"],
            )
        )
    assert payload == expected
    assert wire.encode(payload) == wire.encode(expected)


@pytest.fixture(params=["sqlite", "memory", "postgres"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.parametrize("method", list(METHODS))
def test_hostile_arguments(
    method: str, store_kind: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> None:
    store, target = make_store(store_kind, tmp_path_factory.mktemp(f"hostile-{method}"), request)
    observer = Observer(store, target)
    args = METHODS[method]
    counter = f"{method}[{store_kind}]"
    EXAMPLES[counter] = 0

    @SETTINGS
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        EXAMPLES[counter] += 1
        values: dict[str, Any] = {}
        invalid: list[str] = []
        for arg in args:
            if data.draw(st.integers(0, 9), label=f"{arg.name} valid?") < 6:
                values[arg.name] = data.draw(arg.valid, label=arg.name)
            else:
                values[arg.name] = data.draw(arg.invalid, label=arg.name)
                if arg.name not in ID_ARGS or not id_is_valid(values[arg.name]):
                    invalid.append(arg.name)
        pool_id = values["pool_id"]
        if not invalid and method in APPENDS_ONCE:
            conflict = once_conflict(store, method, values)
            invalid = [] if conflict is None else [conflict]
        before = observer.state(pool_id)
        try:
            result = getattr(store, method)(*values.values())
            if method == "watch":
                result = list(result)
        except InvalidInput as error:
            assert invalid, f"InvalidInput for valid arguments: {error!r}"
            assert error.message.split(":")[0] in invalid, f"message names none of {invalid}: {error.message!r}"
            assert observer.state(pool_id) == before, "a refused call changed the store"
            return
        except AgentError as error:
            assert not invalid, f"{invalid} invalid, but {error!r} is not InvalidInput"
            assert error.message.removeprefix("sqlite ").removeprefix("postgres ") in CONTRACT_MESSAGES, repr(error)
            assert observer.state(pool_id) == before, "a refused call changed the store"
            return
        assert not invalid, f"{invalid} invalid, but the call succeeded: {result!r}"
        after = observer.state(pool_id)
        if method in APPENDS:
            check_written(store, method, str(pool_id), values, result)
        elif method == "record_pool_created_once":
            if result is None:
                assert after == before, "a call on a created pool changed the store"
            else:
                check_written(store, "record_pool_created", str(pool_id), values, result)
        elif method in APPENDS_ONCE:
            in_effect, cursor = result
            if cursor is None:
                assert after == before, "a deduplicated call changed the store"
                record = values["message" if method == "record_message_once" else "condition"]
                lookup = store.message_receipt if method == "record_message_once" else store.wake_registration
                assert in_effect == lookup(pool_id, record.idempotency_key)
            else:
                check_written(store, APPENDS_ONCE[method], str(pool_id), values, cursor)
                assert in_effect == values["receipt" if method == "record_message_once" else "registration"]
        elif method == "open_pool":
            assert isinstance(result, AgentPoolSnapshot) and result.pool_id == pool_id
        elif method in READS:
            assert after == before, "a read changed the store"
            if method in ("members", "topics", "topic_members"):
                assert type(result) is tuple
        elif method == "next_event_sequence":
            assert type(result) is int and result >= 1

    try:
        run()
        if target is not None:
            # Another store object reading the tables cold sees exactly what this one holds.
            with cold_store(target) as fresh:
                for pool_id, _, _ in fresh.pools():
                    assert fresh.snapshot(pool_id) == store.snapshot(pool_id)
                    assert list(fresh.watch(pool_id)) == list(store.watch(pool_id))
    finally:
        observer.close()
        store.close()


@pytest.mark.parametrize("cursor", [2**63 - 1, 2**63, 2**64 - 1, 2**80, AgentPoolStoreCursor(sequence=2**64 - 1)])
def test_watch_past_the_largest_sqlite_integer(
    store_kind: str, tmp_path: Path, cursor: Any, request: pytest.FixtureRequest
) -> None:
    """Any u64 cursor is valid; past the last record there is nothing, in every store."""
    store, target = make_store(store_kind, tmp_path, request)
    try:
        assert list(store.watch(HOME, cursor)) == []
        assert list(store.follow(HOME, cursor, timeout=0)) == []
        assert [r.cursor.sequence for r in store.watch(HOME, 2)] == [3, 4]
    finally:
        store.close()


@pytest.mark.parametrize("bad", ["\ud800", "pool\udfff", "é\udc80é"])
def test_lone_surrogate_ids_are_invalid_input_in_every_store(
    store_kind: str, tmp_path: Path, bad: str, request: pytest.FixtureRequest
) -> None:
    store, target = make_store(store_kind, tmp_path, request)
    observer = Observer(store, target)
    try:
        before = observer.state(HOME)
        for name, call in {
            "pool_id": lambda: store.open_pool(bad, CONFIG),
            "pool_id ": lambda: store.snapshot(bad),
            "run_id": lambda: store.leave_member(HOME, bad),
            "idempotency_key": lambda: store.message_receipt(HOME, bad),
        }.items():
            with pytest.raises(InvalidInput) as caught:
                call()
            assert caught.value.message.startswith(name.strip() + ": "), caught.value.message
            assert "surrogate" in caught.value.message
        assert observer.state(HOME) == before
    finally:
        observer.close()
        store.close()


# -------------------------------------------------------------------- model constructors

MODELS: list[Any] = [
    PolicyRef(kind=PolicyKind.HOST, id="policy.a", version="v1"),
    CorrelationEntry(key="k", value="v"),
    SourceRef(
        kind=SourceKind.HOST, id="source.a", correlation=(CorrelationEntry(key="k", value="v"),), redacted_summary="s"
    ),
    DestinationRef.new("dest.a"),
    EntityRef(kind=EntityKind.RUN, id="run.a", source=SourceRef(kind=SourceKind.HOST, id="s")),
    ErrorContext(message="m", policy_refs=(PolicyRef.new("p"),), privacy=None),
    CausalIds(run_id="run.a", related=(EntityRef.run("run.a"),)),
    MEMBER,
    AgentPoolMessagePolicy(required_policy_refs=(PolicyRef.new("p"),)),
    AgentPoolWakePolicy(),
    OTHER_CONFIG,
    AgentPoolStoreCursor(sequence=5),
    RunAddress.topic("topic.a"),
    EventCorrelation(entries=(CorrelationEntry(key="k", value="v"),)),
    MessageResponseContract(expected_responses=1, timeout_millis=5),
    MESSAGE,
    RECEIPT,
    AgentPoolStoredMessage(message=MESSAGE, receipt=RECEIPT),
    SubscriberQueueConfig(),
    EventFilter(run_ids=("run.a",), families=(EventFamily.RUN,), destination_kinds=(DestinationKind.AGENT,)),
    COMPILED,
    CONDITION,
    REGISTRATION,
    AgentPoolStoredWake(condition=CONDITION, compiled_filter=COMPILED, registration=REGISTRATION),
    PoolOpened(config=CONFIG),
    MemberJoined(member=MEMBER),
    AgentPoolStoreRecord(pool_id=HOME, cursor=AgentPoolStoreCursor(sequence=1), payload=PoolCreated()),
]


def field_names(cls: type) -> list[str]:
    return [name for name, p in inspect.signature(cls).parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY]


def id_fields(cls: type) -> set[str]:
    hints = typing.get_type_hints(cls)
    return {name for name in field_names(cls) if hints.get(name) in ID_TYPES}


def test_model_table_covers_the_fields() -> None:
    for model in MODELS:
        names = field_names(type(model))
        assert names, type(model).__name__
        assert {n: getattr(model, n) for n in names}  # every keyword is an attribute


hostile_values = st.one_of(hostile_scalars(), invalid_ids, valid_ids, st.sampled_from(WRONG_MODELS))


@SETTINGS
@given(model=st.sampled_from(MODELS), data=st.data())
def test_model_construction_with_hostile_values(model: Any, data: st.DataObject) -> None:
    EXAMPLES["models"] = EXAMPLES.get("models", 0) + 1
    cls = type(model)
    names = field_names(cls)
    kwargs = {name: getattr(model, name) for name in names}
    changed = data.draw(st.lists(st.sampled_from(names), min_size=1, max_size=3, unique=True), label="fields")
    ids = id_fields(cls)
    for name in changed:
        kwargs[name] = data.draw(st.one_of(invalid_ids, hostile_values) if name in ids else hostile_values, label=name)
    must_fail = [name for name in changed if name in ids and not id_is_valid(kwargs[name])]
    try:
        built = cls(**kwargs)
    except InvalidInput as error:
        assert error.message.startswith(f"{cls.__name__}."), error.message
        return
    assert not must_fail, f"{cls.__name__} accepted invalid ids in {must_fail}: {built!r}"
    # What was accepted can be written: encoding never fails on a constructed object.
    text = wire.encode(built)
    assert wire.decode(cls, text) == built


@pytest.mark.parametrize("model", MODELS, ids=[type(m).__name__ for m in MODELS])
def test_every_id_field_refuses_a_lone_surrogate(model: Any) -> None:
    cls = type(model)
    kwargs = {name: getattr(model, name) for name in field_names(cls)}
    for name in id_fields(cls):
        with pytest.raises(InvalidInput) as caught:
            cls(**{**kwargs, name: "id.\udc80.x"})
        assert caught.value.message.startswith(f"{cls.__name__}.{name}: "), caught.value.message


@SETTINGS
@given(model=st.sampled_from(MODELS), name=st.text(min_size=1, max_size=10), value=hostile_values)
def test_model_construction_with_unknown_keyword(model: Any, name: str, value: Any) -> None:
    EXAMPLES["unknown_keyword"] = EXAMPLES.get("unknown_keyword", 0) + 1
    cls = type(model)
    kwargs = {n: getattr(model, n) for n in field_names(cls)}
    if name in kwargs:
        return
    with pytest.raises(InvalidInput):
        cls(**kwargs, **{name: value})


@pytest.mark.parametrize("name", ["self", "_unknown"])
def test_a_keyword_named_like_the_constructor_s_own_parameters_is_an_unknown_one(name: str) -> None:
    # Hypothesis found "self": a TypeError ("got multiple values for argument 'self'") before.
    with pytest.raises(InvalidInput, match=f"PolicyRef: unexpected argument '{name}'"):
        PolicyRef(kind=PolicyKind.HOST, id="policy.a", version="v1", **{name: None})


@SETTINGS
@given(text=st.one_of(invalid_ids, st.text(max_size=40), st.sampled_from(["\ud800", "a\udfffb", "é\ud83d"])))
def test_string_fields_refuse_lone_surrogates(text: str) -> None:
    """Free-text fields (not ids) accept any string Rust can hold; a lone surrogate is not one."""
    EXAMPLES["strings"] = EXAMPLES.get("strings", 0) + 1
    encodable = not any(0xD800 <= ord(c) <= 0xDFFF for c in text)
    for build in (
        lambda: PolicyRef(kind=PolicyKind.HOST, id="p", version=text),
        lambda: SourceRef(kind=SourceKind.HOST, id="s", redacted_summary=text),
        lambda: EventFilter(tags=(text,)),
    ):
        try:
            built = build()
        except InvalidInput:
            assert not encodable, f"InvalidInput for an encodable string {text!r}"
            continue
        assert encodable, f"accepted a lone surrogate: {text!r}"
        assert wire.decode(type(built), wire.encode(built)) == built


def test_huge_valid_values_round_trip(tmp_path: Path) -> None:
    """The largest valid values, through a file and back through a cold store object."""
    path = tmp_path / "big.sqlite"
    with SqliteAgentPoolStore(path) as store:
        store.open_pool("é" * 256, BIG_CONFIG)
        store.join_member("é" * 256, BIG_MEMBER)
        store.record_message("é" * 256, BIG_MESSAGE, RECEIPT)
        written = store.snapshot("é" * 256)
    with SqliteAgentPoolStore(path) as cold:
        snapshot = cold.snapshot("é" * 256)
    assert snapshot == written
    assert snapshot.messages[0].message.policy_refs == big_policy_refs(1000)
    assert snapshot.messages[0].message.content_ref == "c" * 500
    assert snapshot.members[0].topics == tuple(f"topic.{i:04d}" for i in range(1000))
    assert snapshot.policy_refs == big_policy_refs(300)


def test_sql_fragments_are_data(tmp_path: Path) -> None:
    path = tmp_path / "sql.sqlite"
    with SqliteAgentPoolStore(path) as store:
        store.open_pool(SQL, CONFIG)
        store.join_member(SQL, AgentPoolMember(run_id=SQL, agent_id=SQL, topics=(SQL,)))
        assert store.snapshot(SQL).members[0].run_id == SQL
        assert [p for p, _, _ in store.pools()] == [SQL]
    db = apsw.Connection(str(path))
    try:
        assert db.execute("SELECT count(*) FROM agent_pool_records").fetchall() == [(2,)]
    finally:
        db.close()


def test_examples_ran() -> None:
    """Runs last in this module (pytest keeps file order): the hypothesis work was really done."""
    if not EXAMPLES:
        pytest.skip("run together with the hypothesis tests of this module")
    total = sum(EXAMPLES.values())
    print(f"\nhostile-input examples: {total} ({len(EXAMPLES)} tests)")
    assert all(count > 0 for count in EXAMPLES.values()), EXAMPLES
