"""``engine.dumps``: a model object's JSON text, byte-identical to ``orjson.dumps(to_plain(obj))``.

The compiled engine writes the text straight from its per-class plans; the twin is that
very expression. Checked on every golden fixture, on strings needing every kind of escape,
on the integer and omission edges, on objects the plans do not cover (built without
validation: the result or the exception must be the ``to_plain`` one), and on generated
objects.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import orjson
import pytest
from helpers import FIXTURES, U32_MAX, U64_MAX, engine_decode, load_jsonl
from hypothesis import given
from test_roundtrip_hypothesis import SETTINGS, any_model, errors

from fastpool import (
    ANY,
    AgentError,
    AgentPoolMember,
    AgentPoolMessagePolicy,
    AgentPoolSnapshot,
    AgentPoolStoreCursor,
    AgentPoolStoreRecord,
    AgentPoolStoreRecordPayload,
    AgentPoolWakePolicy,
    AgentTarget,
    CausalIds,
    CompiledEventFilter,
    CorrelationEntry,
    DestinationKind,
    DestinationRef,
    EntityRef,
    ErrorContext,
    EventFamily,
    EventFilter,
    InvalidInput,
    MemberJoined,
    MessageResponseContract,
    PolicyKind,
    PolicyRef,
    PoolCreated,
    PrivacyClass,
    RunAddress,
    RunMessage,
    RunTarget,
    SourceKind,
    SourceRef,
    SubscriberQueueConfig,
    wire,
)
from fastpool._schema import Model, U64Int
from fastpool._schema import make as schema_make

PAYLOADS = load_jsonl("payloads.jsonl")
FILTERS = load_jsonl("filters.jsonl")
FLOW = json.loads((FIXTURES / "db" / "flow.expected.json").read_text(encoding="utf-8"))["pools"]
FLOW_SNAPSHOTS = [(pool_id, pool["snapshot_json"]) for pool_id, pool in FLOW.items()]
FLOW_RECORDS = [(f"{pool_id}#{i}", text) for pool_id, pool in FLOW.items() for i, text in enumerate(pool["watch"])]


def orjson_path(engine: Any, obj: Any) -> str:
    """What ``dumps`` must equal: the dicts of ``to_plain``, written by orjson."""
    return orjson.dumps(engine.to_plain(obj)).decode("utf-8")


def python_json(text: str) -> str:
    """serde_json's compact text by another writer: Python's (it escapes exactly the same characters)."""
    return json.dumps(orjson.loads(text), ensure_ascii=False, separators=(",", ":"))


def unchecked(cls: Any, **changes: Any) -> Any:
    """A default-constructed ``cls`` with some slots set without validation."""
    base = cls()
    return schema_make(cls, tuple(changes.get(name, getattr(base, name)) for name in cls._names))


def outcome(call: Any) -> tuple[str, Any]:
    try:
        return "ok", call()
    except Exception as error:  # the exception itself is the result under test
        return "error", (type(error), str(error))


# ---------------------------------------------------------------- golden fixtures


@pytest.mark.parametrize("row", PAYLOADS, ids=[row["case"] for row in PAYLOADS])
def test_payload_fixtures(engine, row) -> None:
    text = row["payload_json"]
    payload = engine.decode_payload(text)
    assert engine.dumps(payload) == text
    assert engine.dumps(engine.decode_payload(text.encode("utf-8"))) == text


@pytest.mark.parametrize("row", FILTERS, ids=[row["case"] for row in FILTERS])
def test_filter_fixtures(engine, row) -> None:
    criteria = engine_decode(engine, EventFilter, row["criteria_json"])
    assert engine.dumps(criteria) == row["criteria_json"]
    compiled = engine_decode(engine, CompiledEventFilter, row["compiled_json"])
    assert engine.dumps(compiled) == row["compiled_json"]
    assert engine.dumps(criteria.compile()) == row["compiled_json"]


@pytest.mark.parametrize(("pool_id", "text"), FLOW_SNAPSHOTS, ids=[pool_id for pool_id, _ in FLOW_SNAPSHOTS])
def test_flow_snapshots(engine, pool_id, text) -> None:
    snapshot = wire.decode(AgentPoolSnapshot, text)
    assert snapshot.pool_id == pool_id
    assert engine.dumps(snapshot) == text


@pytest.mark.parametrize(("name", "text"), FLOW_RECORDS, ids=[name for name, _ in FLOW_RECORDS])
def test_flow_watch_records(engine, name, text) -> None:
    record = wire.decode(AgentPoolStoreRecord, text)
    assert engine.dumps(record) == text
    assert engine.dumps(record.payload) == wire.encode(record.payload)


def test_fixture_objects_agree_across_engines(c_engine, py_engine) -> None:
    for row in PAYLOADS:
        payload = py_engine.decode_payload(row["payload_json"])
        assert c_engine.dumps(payload) == py_engine.dumps(payload) == row["payload_json"], row["case"]


# ---------------------------------------------------------------- strings

EVERY_ASCII = "".join(chr(code) for code in range(0x80))
AWKWARD = [
    "",
    "plain",
    EVERY_ASCII,
    '"',
    "\\",
    '\\"',
    '"quoted" and \\back\\slashed\\',
    "\b\t\n\f\r",
    "\x00\x01\x1f\x0b\x0e",
    "\x7f",
    "\u2028\u2029",
    "caf\u00e9 \u00ff",
    "\u65e5\u672c\u8a9e",
    "\U0001f600\U0010ffff",
    'mixed \u00e9 and \n and \x01 and \U0001f600 and \\ and "',
    "\x80\x9f\u00a0",  # C1 controls: raw, as serde_json writes them
    "\ufeff\ufffe\uffff",
    "x" * 5000,
    "\x01" * 3000,
    "\u00e9" * 3000 + '"',
    "\U0001f600" * 1000 + "\n",
]


@pytest.mark.parametrize("text", AWKWARD, ids=[ascii(text)[:40] for text in AWKWARD])
def test_free_text_fields(engine, text) -> None:
    objects = [
        PolicyRef(kind=PolicyKind.HOST, id="policy.p", version=text),
        SourceRef(kind=SourceKind.HOST, id="source.s", redacted_summary=text),
        EventFilter(tags=(text, "t", text)),
        ErrorContext(message=text, redacted_summary=text),
        schema_make(
            CompiledEventFilter, (text, text, (), EventFilter().payload_access, SubscriberQueueConfig(), EventFilter())
        ),
    ]
    for obj in objects:
        expected = orjson_path(engine, obj)
        assert engine.dumps(obj) == expected
        assert expected == python_json(expected)


def test_escapes_are_serde_jsons(engine) -> None:
    ref = PolicyRef(kind=PolicyKind.HOST, id="p", version='"\\\b\t\n\f\r\x00\x1f\x7f\u2028\u00e9\U0001f600/')
    assert engine.dumps(ref) == (
        '{"kind":"host","id":"p","version":"\\"\\\\\\b\\t\\n\\f\\r\\u0000\\u001f\x7f\u2028\u00e9\U0001f600/"}'
    )
    every = engine.dumps(PolicyRef(kind=PolicyKind.HOST, id="p", version=EVERY_ASCII))
    assert "\\u000b" in every and "\\u001e" in every and "\\u000B" not in every


IDS = ['quote"', "back\\slash", "'single'", "pool.\u00e9", "\U0001f600", "line\u2028sep", "\u00a0", "a" * 512]


@pytest.mark.parametrize("value", IDS, ids=[ascii(value)[:24] for value in IDS])
def test_ids(engine, value) -> None:
    member = AgentPoolMember(run_id=value, agent_id=value, topics=(value, "topic.t"))
    address = RunAddress(
        target=AgentTarget(agent_id=value),
        destination_ref=DestinationRef(kind=DestinationKind.AGENT, id=value, redacted_summary=value),
        related_refs=(EntityRef.run(value),),
    )
    message = RunMessage(
        message_id=value,
        from_=value,
        to=address,
        content_ref=value,
        idempotency_key=value,
        policy_refs=(PolicyRef(kind=PolicyKind.HOST, id=value, version=value),),
    )
    for obj in (member, MemberJoined(member=member), address, message, CorrelationEntry(key=value, value=value)):
        assert engine.dumps(obj) == orjson_path(engine, obj)
    assert engine.dumps(MemberJoined(member=member)).startswith('{"type":"member_joined","member":{"run_id":')


def test_lone_surrogate_raises_orjsons_error(engine) -> None:
    # Not a valid model value (the constructors reject it); built without checks.
    ref = schema_make(PolicyRef, (PolicyKind.HOST, "p", "a\ud800b"))
    with pytest.raises(orjson.JSONEncodeError) as caught:
        orjson_path(engine, ref)
    with pytest.raises(orjson.JSONEncodeError) as raised:
        engine.dumps(ref)
    assert str(raised.value) == str(caught.value)
    member = schema_make(AgentPoolMember, ("run.a", "agent.a", (), ("ok \u00e9", "\udfff")))
    with pytest.raises(orjson.JSONEncodeError):
        engine.dumps(member)


# ---------------------------------------------------------------- numbers, omissions, nulls


@pytest.mark.parametrize("number", [0, 1, 9, 10, 99, 2**32, 2**53 + 1, 2**63 - 1, 2**63, U64_MAX - 1, U64_MAX])
def test_integers(engine, number) -> None:
    assert engine.dumps(AgentPoolStoreCursor(sequence=number)) == f'{{"sequence":{number}}}'
    contract = MessageResponseContract(expected_responses=min(number, U32_MAX), timeout_millis=number)
    assert engine.dumps(contract) == orjson_path(engine, contract)
    if number:
        queue = SubscriberQueueConfig(capacity=number, terminal_reserve=number)
        assert engine.dumps(queue) == orjson_path(engine, queue)


def test_empty_tuples_and_omissions(engine) -> None:
    assert (
        engine.dumps(AgentPoolMember(run_id="run.a", agent_id="agent.a")) == '{"run_id":"run.a","agent_id":"agent.a"}'
    )
    assert engine.dumps(PolicyRef(kind=PolicyKind.HOST, id="p")) == '{"kind":"host","id":"p"}'
    assert engine.dumps(PolicyRef(kind=PolicyKind.HOST, id="p", version="")) == '{"kind":"host","id":"p","version":""}'
    empty = AgentPoolSnapshot(
        pool_id="pool.p",
        created=False,
        members=(),
        topics=(),
        message_policy=AgentPoolMessagePolicy(),
        wake_policy=AgentPoolWakePolicy(),
    )
    text = engine.dumps(empty)
    assert text.startswith('{"pool_id":"pool.p","created":false,"members":[],"topics":[],')
    assert '"messages"' not in text and '"cursor"' not in text
    assert text == orjson_path(engine, empty)
    assert engine.dumps(PoolCreated()) == '{"type":"pool_created"}'
    assert engine.dumps(RunTarget(run_id="run.a")) == '{"type":"run","run_id":"run.a"}'
    assert engine.dumps(EventFilter(run_ids=(), families=(EventFamily.RUN,))).startswith(
        '{"run_ids":{"include":[]},"session_ids":"any",'
    )
    compiled = EventFilter().compile()
    assert '"indexed_fields":[]' in engine.dumps(compiled)


def test_none_is_null_where_serde_writes_it(engine) -> None:
    assert engine.dumps(CausalIds()) == (
        '{"run_id":null,"turn_id":null,"attempt_id":null,"event_id":null,"tool_call_id":null,"span_id":null,'
        '"related":[]}'
    )
    assert engine.dumps(ErrorContext(message="m")) == (
        '{"message":"m","policy_refs":[],"source":null,"destination":null,"subject":null,"privacy":null,'
        '"redacted_summary":null}'
    )
    context = ErrorContext(message="m", privacy=PrivacyClass.CONTENT_REFS_ONLY, subject=EntityRef.run("run.a"))
    assert engine.dumps(context) == orjson_path(engine, context)
    causal = CausalIds(run_id="run.a", span_id="span \u00e9", related=(EntityRef.agent("agent.a"),))
    assert engine.dumps(causal) == orjson_path(engine, causal)


def test_large_objects_grow_the_buffer(engine) -> None:
    members = tuple(
        AgentPoolMember(run_id=f"run.{i:05} \u00e9", agent_id=f"agent.{i}", topics=(f"topic.{i % 7}",))
        for i in range(2000)
    )
    snapshot = schema_make(
        AgentPoolSnapshot,
        (
            "pool.big",
            True,
            members,
            tuple(sorted({t for m in members for t in m.topics})),
            AgentPoolMessagePolicy(),
            AgentPoolWakePolicy(),
            (),
            (),
            (),
            AgentPoolStoreCursor(sequence=U64_MAX),
        ),
    )
    text = engine.dumps(snapshot)
    assert len(text) > 100_000
    assert text == orjson_path(engine, snapshot)


# ---------------------------------------------------------------- what the plans do not cover


class _Str(str):
    pass


class _Int(int):
    pass


class _TypeField(Model):
    """A tagged class with a field named like the tag: to_plain's dict keeps the field's value."""

    TYPE: ClassVar[str] = "tagged"
    type: str
    other: str


class _IntTag(Model):
    TYPE: ClassVar[int] = 5
    name: str


class _SameWire(Model):
    """Two fields with one wire key: to_plain's dict keeps one key, in the first one's place."""

    name: str
    name_: str


class _Watched(Model):
    """Attribute access of its own: the plans read slots directly, so the twin writes it."""

    name: str

    def __getattribute__(self, name: str) -> Any:
        return object.__getattribute__(self, name)


def _unchecked_cases() -> list[tuple[str, Any]]:
    ref = PolicyRef(kind=PolicyKind.HOST, id="p")
    unset = object.__new__(AgentPoolStoreCursor)
    return [
        ("bool as int", schema_make(AgentPoolStoreCursor, (True,))),
        ("int subclass", schema_make(AgentPoolStoreCursor, (_Int(5),))),
        ("negative int", schema_make(AgentPoolStoreCursor, (-5,))),
        ("int past u64", schema_make(AgentPoolStoreCursor, (2**64,))),
        ("float", schema_make(AgentPoolStoreCursor, (1.5,))),
        ("str subclass id", schema_make(PolicyRef, (PolicyKind.HOST, _Str("p"), None))),
        ("int as id", schema_make(PolicyRef, (PolicyKind.HOST, 7, None))),
        ("str as enum", schema_make(PolicyRef, ("host", "p", None))),
        ("None required", schema_make(PolicyRef, (PolicyKind.HOST, None, None))),
        ("list as vec", schema_make(AgentPoolMember, ("run.a", "agent.a", [ref], ["topic.t"]))),
        ("empty list as vec", schema_make(AgentPoolMember, ("run.a", "agent.a", [], ()))),
        ("list as filter set", unchecked(EventFilter, run_ids=["run.a"])),
        ("str as filter set", unchecked(EventFilter, tags="any")),
        ("int as bool", unchecked(EventFilter, terminal_only=1)),
        ("None as bool", unchecked(EventFilter, terminal_only=None)),
        ("str in enum vec", unchecked(EventFilter, families=("run",))),
        ("list as model", unchecked(EventFilter, queue=[])),
        ("wrong model", schema_make(AgentPoolStoreRecord, ("pool.p", ref, PoolCreated()))),
        ("model as union", schema_make(AgentPoolStoreRecord, ("pool.p", AgentPoolStoreCursor(sequence=1), ref))),
        ("unset slot", unset),
        ("nested unset slot", schema_make(AgentPoolStoreRecord, ("pool.p", unset, PoolCreated()))),
        ("field named type", _TypeField(type="t", other="o")),
        ("int tag", _IntTag(name="n")),
        ("one wire key twice", _SameWire(name="a", name_="b")),
        ("attribute access of its own", _Watched(name="w")),
        ("not a model", {"a": 1}),
        ("None", None),
        ("int", 3),
    ]


UNCHECKED = _unchecked_cases()


@pytest.mark.parametrize(("name", "obj"), UNCHECKED, ids=[name for name, _ in UNCHECKED])
def test_unchecked_objects_follow_to_plain(engine, py_engine, name, obj) -> None:
    expected = outcome(lambda: orjson_path(py_engine, obj))
    assert outcome(lambda: engine.dumps(obj)) == expected
    assert outcome(lambda: orjson_path(engine, obj)) == expected


def test_a_failure_while_planning_surfaces(c_engine, monkeypatch) -> None:
    """The plan compiler sends only what its own checks refuse to the twin: any other failure
    while planning a class is a bug and surfaces, not a silent fallback to the slow way."""

    class Fresh(Model):  # a class no plan was made for yet
        count: U64Int

    monkeypatch.setattr(c_engine, "INT_LIMITS", {})  # the planner's look-up of the int's range fails
    with pytest.raises(KeyError):
        c_engine.dumps(Fresh(count=1))


# ---------------------------------------------------------------- wire and generated objects


def test_wire_encode_uses_dumps(engine) -> None:
    payload = wire.decode(AgentPoolStoreRecordPayload, PAYLOADS[0]["payload_json"])
    assert wire.encode(payload) == engine.dumps(payload) == PAYLOADS[0]["payload_json"]
    assert wire.dumps(payload) == PAYLOADS[0]["payload_json"].encode("utf-8")
    error = AgentError.contract_violation("cv \u00e9")
    assert wire.encode(error) == '{"ContractViolation":{"message":"cv \u00e9"}}'
    with pytest.raises(InvalidInput, match="not a fastpool model object"):
        wire.encode({"not": "a model"})
    assert wire.encode(EventFilter(run_ids=ANY)) == engine.dumps(EventFilter())


@SETTINGS
@given(obj=any_model)
def test_generated_objects(engine, obj) -> None:
    text = engine.dumps(obj)
    assert text == orjson_path(engine, obj)
    assert text == python_json(text)


@SETTINGS
@given(obj=any_model)
def test_engines_agree(c_engine, py_engine, obj) -> None:
    assert c_engine.dumps(obj) == py_engine.dumps(obj) == orjson_path(py_engine, obj)


@SETTINGS
@given(error=errors)
def test_generated_error_parts(engine, error) -> None:
    for part in (error.context, error.causal_ids):
        assert engine.dumps(part) == orjson_path(engine, part)


def test_compiled_writes_valid_objects_itself(c_engine, monkeypatch) -> None:
    """Every fixture object is written from the plans: the to_plain way is never taken."""

    def refuse(obj: Any) -> Any:
        raise AssertionError(f"dumps fell back to to_plain for {type(obj).__name__}")

    objects = [c_engine.decode_payload(row["payload_json"]) for row in PAYLOADS]
    objects += [wire.decode(CompiledEventFilter, row["compiled_json"]) for row in FILTERS]
    objects += [wire.decode(AgentPoolSnapshot, text) for _, text in FLOW_SNAPSHOTS]
    objects += [wire.decode(AgentPoolStoreRecord, text) for _, text in FLOW_RECORDS]
    objects += [ErrorContext(message="m \n \u00e9"), CausalIds(), RunTarget(run_id="run.a")]
    expected = [c_engine.dumps(obj) for obj in objects]
    monkeypatch.setattr(c_engine, "to_plain", refuse)
    assert [c_engine.dumps(obj) for obj in objects] == expected
    with pytest.raises(AssertionError, match="fell back"):
        c_engine.dumps(schema_make(AgentPoolStoreCursor, (True,)))


def test_chunked_snapshot_fields_are_written_as_the_tuple_of_their_items(engine, c_engine, monkeypatch) -> None:
    """A store's snapshot holds ``messages`` and ``wakes`` as ``ChunkedTuple``s: both engines
    write it byte for byte as the same snapshot with plain tuples, empty ones omitted as
    tuples are, and the compiled engine writes it from its plans (never the to_plain way)."""
    from fastpool import ChunkedTuple, _chunked

    snapshots = [wire.decode(AgentPoolSnapshot, text) for _, text in FLOW_SNAPSHOTS]
    snapshots.append(snapshots[0].replace(wakes=()))
    monkeypatch.setattr(_chunked, "CHUNK", 2)  # several chunks even for a few items
    fields = ("pool_id", "created", "members", "topics", "message_policy", "wake_policy", "policy_refs")

    def chunk(snapshot: AgentPoolSnapshot) -> AgentPoolSnapshot:  # as PoolState.snapshot makes it
        values = tuple(getattr(snapshot, name) for name in fields)
        sequences = (ChunkedTuple(snapshot.messages), ChunkedTuple(snapshot.wakes))
        made: AgentPoolSnapshot = schema_make(AgentPoolSnapshot, (*values, *sequences, snapshot.cursor))
        return made

    chunked = [chunk(snapshot) for snapshot in snapshots]
    assert any(len(snapshot.messages._chunks) > 1 for snapshot in chunked)
    assert any(not snapshot.wakes for snapshot in chunked)
    expected = [engine.dumps(snapshot) for snapshot in snapshots]
    assert [engine.dumps(snapshot) for snapshot in chunked] == expected
    assert [engine.to_plain(snapshot) for snapshot in chunked] == [engine.to_plain(s) for s in snapshots]

    def refuse(obj: Any) -> Any:
        raise AssertionError(f"dumps fell back to to_plain for {type(obj).__name__}")

    monkeypatch.setattr(c_engine, "to_plain", refuse)
    assert [c_engine.dumps(snapshot) for snapshot in chunked] == expected
