"""The value classes, enums and errors of SPEC §2-§3 and REFERENCE §3-§8."""

from __future__ import annotations

import copy
import hashlib
import pickle

import pytest
from helpers import U32_MAX, U64_MAX

import fastpool
from fastpool import (
    ANY,
    AgentError,
    AgentErrorKind,
    AgentPoolMember,
    AgentPoolMessagePolicy,
    AgentPoolSnapshot,
    AgentPoolStoreConfig,
    AgentPoolStoreCursor,
    AgentPoolStoredMessage,
    AgentPoolStoredWake,
    AgentPoolStoreRecord,
    AgentPoolWakePolicy,
    AgentTarget,
    CausalIds,
    CompiledEventFilter,
    CorrelationEntry,
    DestinationKind,
    DestinationRef,
    EntityKind,
    EntityRef,
    ErrorContext,
    EventCorrelation,
    EventDeliverySemantics,
    EventFamily,
    EventFilter,
    EventIndexField,
    EventKind,
    InvalidInput,
    MemberJoined,
    MemberLeft,
    MessageReceipt,
    MessageRecorded,
    MessageResponseContract,
    MessageStatus,
    PayloadAccessMode,
    PolicyKind,
    PolicyRef,
    PoolCreated,
    PoolOpened,
    PoolTarget,
    PrivacyClass,
    ResumeInputPolicy,
    RetentionClass,
    RetryClassification,
    RunAddress,
    RunMessage,
    RunTarget,
    SourceKind,
    SourceRef,
    SubscriberOverflowPolicy,
    SubscriberQueueConfig,
    TopicTarget,
    TrustClass,
    WakeCondition,
    WakeRecorded,
    WakeRegistration,
    WakeRegistrationStatus,
    wire,
)
from fastpool.enums import TERMINAL_EVENT_KINDS


def message(**changes) -> RunMessage:
    values = dict(
        message_id="msg.1", from_="run.a", to=RunAddress.run("run.b"), content_ref="content.1", idempotency_key="idem.1"
    )
    values.update(changes)
    return RunMessage(**values)


def wake(**changes) -> AgentPoolStoredWake:
    condition = WakeCondition(
        condition_id="wake.1", run_id="run.b", filter=EventFilter(), idempotency_key="idem.wake.1"
    )
    values = dict(
        condition=condition,
        compiled_filter=condition.compile_envelope_filter(),
        registration=WakeRegistration(
            condition_id="wake.1", run_id="run.b", status="registered", journal_cursor="journal.4"
        ),
    )
    values.update(changes)
    return AgentPoolStoredWake(**values)


# ---------------------------------------------------------------- construction and defaults


def test_member_defaults() -> None:
    member = AgentPoolMember(run_id="run.a", agent_id="agent.a")
    assert (member.run_id, member.agent_id, member.policy_refs, member.topics) == ("run.a", "agent.a", (), ())
    assert wire.encode(member) == '{"run_id":"run.a","agent_id":"agent.a"}'
    full = AgentPoolMember(
        run_id="run.a", agent_id="agent.a", policy_refs=[PolicyRef.new("policy.m")], topics=["topic.t"]
    )
    assert wire.encode(full) == (
        '{"run_id":"run.a","agent_id":"agent.a","policy_refs":[{"kind":"host","id":"policy.m"}],"topics":["topic.t"]}'
    )


def test_run_message_defaults_and_wire_order() -> None:
    msg = message()
    assert msg.from_ == "run.a"
    assert msg.correlation == EventCorrelation()
    assert (msg.reply_to, msg.response_contract, msg.expires_at_millis, msg.policy_refs) == (None, None, None, ())
    to = (
        '{"target":{"type":"run","run_id":"run.b"},"destination_ref":{"kind":"agent","id":"run.b",'
        '"privacy":"content_refs_only","retention":"host_policy"},"related_refs":[{"kind":"run","id":"run.b","privacy":"content_refs_only"}]}'
    )
    assert wire.encode(msg) == (
        '{"message_id":"msg.1","from":"run.a","to":'
        + to
        + ',"content_ref":"content.1","correlation":{},"idempotency_key":"idem.1"}'
    )
    # REFERENCE §7.6 "all optional fields set": idempotency_key comes after expires_at_millis on the wire
    full = message(
        correlation=EventCorrelation(entries=[CorrelationEntry(key="k", value="v")]),
        reply_to="msg.0",
        response_contract=MessageResponseContract.one_response(500),
        expires_at_millis=123,
        policy_refs=[PolicyRef.new("policy.m")],
    )
    assert wire.encode(full) == (
        '{"message_id":"msg.1","from":"run.a","to":'
        + to
        + ',"content_ref":"content.1","correlation":{"entries":[{"key":"k","value":"v"}]},'
        '"reply_to":"msg.0","response_contract":{"expected_responses":1,"timeout_millis":500},"expires_at_millis":123,'
        '"idempotency_key":"idem.1","policy_refs":[{"kind":"host","id":"policy.m"}]}'
    )
    assert wire.decode(RunMessage, wire.encode(full)) == full


def test_run_message_wire_key_from_is_not_a_keyword() -> None:
    with pytest.raises(InvalidInput, match="from"):
        RunMessage(
            **{
                "message_id": "m",
                "from": "run.a",
                "to": RunAddress.run("r"),
                "content_ref": "c",
                "idempotency_key": "i",
            }
        )


def test_wake_condition_defaults_and_wire_order() -> None:
    condition = WakeCondition(
        condition_id="wake.1", run_id="run.b", filter=EventFilter(), idempotency_key="idem.wake.1"
    )
    assert condition.timeout_millis is None
    assert condition.resume_with is ResumeInputPolicy.MATCHING_EVENT_REFS
    assert condition.policy_refs == ()
    filter_json = wire.encode(EventFilter())
    assert wire.encode(condition) == (
        '{"condition_id":"wake.1","run_id":"run.b","filter":'
        + filter_json
        + ',"resume_with":"matching_event_refs","idempotency_key":"idem.wake.1"}'
    )
    full = condition.replace(timeout_millis=1000, policy_refs=[PolicyRef.new("policy.w")])
    assert wire.encode(full) == (
        '{"condition_id":"wake.1","run_id":"run.b","filter":'
        + filter_json
        + ',"timeout_millis":1000,"resume_with":"matching_event_refs","idempotency_key":"idem.wake.1",'
        '"policy_refs":[{"kind":"host","id":"policy.w"}]}'
    )


def test_ref_defaults() -> None:
    source = SourceRef(kind="host", id="src.1")
    assert (source.trust, source.privacy, source.correlation, source.redacted_summary) == (
        TrustClass.HOST_PROVIDED,
        PrivacyClass.CONTENT_REFS_ONLY,
        (),
        None,
    )
    assert wire.encode(source) == '{"kind":"host","id":"src.1","trust":"host_provided","privacy":"content_refs_only"}'
    destination = DestinationRef(kind="agent", id="run.b")
    assert (destination.privacy, destination.retention) == (PrivacyClass.CONTENT_REFS_ONLY, RetentionClass.HOST_POLICY)
    entity = EntityRef(kind="run", id="run.b")
    assert (entity.source, entity.privacy, entity.redacted_summary) == (None, PrivacyClass.CONTENT_REFS_ONLY, None)


def test_config_queue_filter_defaults() -> None:
    config = AgentPoolStoreConfig()
    assert config.message_policy == AgentPoolMessagePolicy.bounded_defaults()
    assert config.wake_policy == AgentPoolWakePolicy.safe_defaults()
    assert config.policy_refs == ()
    assert (
        wire.encode(config)
        == '{"message_policy":{"include_sender_in_pool_broadcast":false},"wake_policy":{"envelope_only":true}}'
    )
    queue = SubscriberQueueConfig()
    assert (queue.capacity, queue.terminal_reserve, queue.overflow) == (
        64,
        1,
        SubscriberOverflowPolicy.DROP_NON_TERMINAL,
    )
    assert wire.encode(queue) == '{"capacity":64,"terminal_reserve":1,"overflow":"drop_non_terminal"}'
    default = EventFilter()
    for name in (
        "run_ids",
        "session_ids",
        "agent_ids",
        "turn_ids",
        "families",
        "kinds",
        "source_kinds",
        "destination_kinds",
        "subject_kinds",
        "related_entity_kinds",
        "correlation_keys",
        "tags",
        "privacy_classes",
        "delivery_semantics",
    ):
        assert getattr(default, name) is ANY, name
    assert (default.terminal_only, default.payload_access, default.queue) == (
        False,
        PayloadAccessMode.ENVELOPE_ONLY,
        queue,
    )


def test_missing_required_argument_names_the_field() -> None:
    with pytest.raises(InvalidInput, match="agent_id"):
        AgentPoolMember(run_id="run.a")
    with pytest.raises(InvalidInput, match="idempotency_key"):
        RunMessage(message_id="m", from_="run.a", to=RunAddress.run("r"), content_ref="c")
    with pytest.raises(InvalidInput, match="sequence"):
        AgentPoolStoreCursor()


def test_snapshot_and_record_construction() -> None:
    snapshot = AgentPoolSnapshot(
        pool_id="pool.direct",
        created=False,
        members=[],
        topics=[],
        message_policy=AgentPoolMessagePolicy(),
        wake_policy=AgentPoolWakePolicy(),
        cursor=AgentPoolStoreCursor.new(1),
    )
    assert wire.encode(snapshot) == (
        '{"pool_id":"pool.direct","created":false,"members":[],"topics":[],"message_policy":'
        '{"include_sender_in_pool_broadcast":false},"wake_policy":{"envelope_only":true},"cursor":{"sequence":1}}'
    )
    record = AgentPoolStoreRecord(pool_id="pool.flow", cursor=AgentPoolStoreCursor.new(2), payload=PoolCreated())
    assert wire.encode(record) == '{"pool_id":"pool.flow","cursor":{"sequence":2},"payload":{"type":"pool_created"}}'


def test_payload_type_tags() -> None:
    assert [cls.TYPE for cls in (PoolOpened, PoolCreated, MemberJoined, MemberLeft, MessageRecorded, WakeRecorded)] == [
        "pool_opened",
        "pool_created",
        "member_joined",
        "member_left",
        "run_message",
        "wake",
    ]
    assert wire.encode(PoolCreated()) == '{"type":"pool_created"}'
    left = MemberLeft(member=AgentPoolMember(run_id="run.z", agent_id="agent.z", topics=["topic.b", "topic.a"]))
    assert (
        wire.encode(left)
        == '{"type":"member_left","member":{"run_id":"run.z","agent_id":"agent.z","topics":["topic.b","topic.a"]}}'
    )


# ---------------------------------------------------------------- immutability, equality, hashing


@pytest.mark.parametrize(
    "obj, attribute",
    [
        (AgentPoolMember(run_id="run.a", agent_id="agent.a"), "run_id"),
        (message(), "from_"),
        (EventFilter(), "run_ids"),
        (AgentPoolStoreCursor.start(), "sequence"),
        (PoolCreated(), "anything"),
    ],
    ids=lambda value: type(value).__name__ if not isinstance(value, str) else value,
)
def test_immutable(obj, attribute) -> None:
    before = wire.encode(obj)
    with pytest.raises(AttributeError):
        setattr(obj, attribute, "x")
    with pytest.raises(AttributeError):
        obj.new_attribute = 1
    if hasattr(obj, attribute):
        with pytest.raises(AttributeError):
            delattr(obj, attribute)
    assert wire.encode(obj) == before


def test_equality_and_hash_by_value() -> None:
    a = AgentPoolMember(run_id="run.a", agent_id="agent.a", topics=["t"])
    b = AgentPoolMember(run_id="run.a", agent_id="agent.a", topics=("t",))
    c = AgentPoolMember(run_id="run.a", agent_id="agent.b", topics=("t",))
    assert a == b and hash(a) == hash(b)
    assert a != c and not (a == c)
    assert len({a, b, c}) == 2
    assert a != "run.a"
    assert message() == message() and hash(message()) == hash(message())
    assert message() != message(expires_at_millis=0)
    # same fields, different types: never equal
    assert MemberJoined(member=a) != MemberLeft(member=a)
    assert RunAddress.agent("x") != RunAddress.run("x")
    assert hash(wake()) == hash(wake())
    assert {EventFilter(): 1}[EventFilter()] == 1


def test_policy_ref_equality_includes_version() -> None:
    plain = PolicyRef.new("policy.v")
    versioned = PolicyRef(kind="host", id="policy.v", version="1")
    assert plain != versioned
    assert wire.encode(versioned) == '{"kind":"host","id":"policy.v","version":"1"}'
    assert PolicyRef(kind="host", id="policy.v", version="") != plain


def test_lists_become_tuples() -> None:
    topics = ["topic.b", "topic.a", "topic.b"]
    member = AgentPoolMember(run_id="run.a", agent_id="agent.a", topics=topics)
    topics.append("topic.c")
    assert member.topics == ("topic.b", "topic.a", "topic.b")
    receipt = MessageReceipt(message_id="m", status="delivered", delivered_to=["run.b"])
    assert type(receipt.delivered_to) is tuple
    criteria = EventFilter(run_ids=["run.a"], families=["agent_pool"])
    assert criteria.run_ids == ("run.a",) and type(criteria.families) is tuple
    compiled = criteria.compile()
    assert type(compiled.indexed_fields) is tuple
    address = RunAddress(
        target=RunTarget(run_id="r"), destination_ref=DestinationRef.new("r"), related_refs=[EntityRef.run("r")]
    )
    assert type(address.related_refs) is tuple


def test_enum_fields_accept_wire_strings() -> None:
    assert PolicyRef(kind="approval", id="p").kind is PolicyKind.APPROVAL
    assert MessageReceipt(message_id="m", status="timed_out").status is MessageStatus.TIMED_OUT
    assert WakeRegistration(condition_id="w", run_id="r", status="cancelled").status is WakeRegistrationStatus.CANCELLED
    criteria = EventFilter(
        families=["agent_pool"], kinds=["run_message_delivered", EventKind.RUN_COMPLETED], privacy_classes=["secret"]
    )
    assert criteria.families == (EventFamily.AGENT_POOL,)
    assert criteria.kinds == (EventKind.RUN_MESSAGE_DELIVERED, EventKind.RUN_COMPLETED)
    assert all(type(kind) is EventKind for kind in criteria.kinds)
    assert criteria == EventFilter(
        families=[EventFamily.AGENT_POOL],
        kinds=[EventKind.RUN_MESSAGE_DELIVERED, "run_completed"],
        privacy_classes=[PrivacyClass.SECRET],
    )
    assert SubscriberQueueConfig(overflow="fail_subscriber").overflow is SubscriberOverflowPolicy.FAIL_SUBSCRIBER
    assert AgentError("Timeout", "Retryable", "m").kind is AgentErrorKind.TIMEOUT


@pytest.mark.parametrize(
    "build, field",
    [
        (lambda: MessageReceipt(message_id="m", status="Delivered"), "status"),
        (lambda: MessageReceipt(message_id="m", status="sent"), "status"),
        (lambda: PolicyRef(kind="Host", id="p"), "kind"),
        (lambda: EventFilter(families=["agent-pool"]), "families"),
        (lambda: EventFilter(tags=["ok", 3]), "tags"),
        (lambda: SubscriberQueueConfig(overflow=None), "overflow"),
    ],
)
def test_enum_fields_reject_unknown_strings(build, field) -> None:
    with pytest.raises(InvalidInput) as caught:
        build()
    assert field in caught.value.message


def test_any_versus_empty_include() -> None:
    assert fastpool.ANY is ANY
    assert repr(ANY) == "ANY"
    assert type(ANY)() is ANY
    assert copy.deepcopy(ANY) is ANY and pickle.loads(pickle.dumps(ANY)) is ANY
    empty = EventFilter(run_ids=(), tags=[])
    assert empty.run_ids == () and empty.run_ids is not ANY
    assert empty != EventFilter()
    assert '"run_ids":{"include":[]}' in wire.encode(empty)
    assert '"tags":{"include":[]}' in wire.encode(empty)
    assert '"run_ids":"any"' in wire.encode(EventFilter())
    assert empty.compile().indexed_fields == (EventIndexField.RUN_ID, EventIndexField.TAG)
    assert EventFilter().compile().indexed_fields == ()
    assert wire.decode(EventFilter, wire.encode(empty)) == empty


def test_filter_sets_keep_order_and_duplicates() -> None:
    a = EventFilter(run_ids=["run.b", "run.a", "run.b"])
    b = EventFilter(run_ids=["run.a", "run.b"])
    assert a.run_ids == ("run.b", "run.a", "run.b")
    assert a != b
    assert a.compile().filter_fingerprint != b.compile().filter_fingerprint


# ---------------------------------------------------------------- Rust-style constructors


def test_policy_ref_constructors() -> None:
    assert PolicyRef.new("policy.x") == PolicyRef(kind=PolicyKind.HOST, id="policy.x")
    assert wire.encode(PolicyRef.new("policy.x")) == '{"kind":"host","id":"policy.x"}'
    approval = PolicyRef.with_kind("approval", "policy.a")
    assert (approval.kind, approval.id, approval.version) == (PolicyKind.APPROVAL, "policy.a", None)
    assert PolicyRef.with_kind(PolicyKind.SANDBOX, "s").kind is PolicyKind.SANDBOX


def test_destination_and_entity_constructors() -> None:
    assert DestinationRef.new("dest.1").kind is DestinationKind.HOST
    assert (
        wire.encode(DestinationRef.new("dest.1"))
        == '{"kind":"host","id":"dest.1","privacy":"content_refs_only","retention":"host_policy"}'
    )
    assert wire.encode(DestinationRef.with_kind(DestinationKind.AGENT, "run.b")) == (
        '{"kind":"agent","id":"run.b","privacy":"content_refs_only","retention":"host_policy"}'
    )
    assert wire.encode(EntityRef.run("run.b")) == '{"kind":"run","id":"run.b","privacy":"content_refs_only"}'
    shortcuts = {
        EntityRef.run: EntityKind.RUN,
        EntityRef.agent: EntityKind.AGENT,
        EntityRef.agent_pool: EntityKind.AGENT_POOL,
        EntityRef.topic: EntityKind.TOPIC,
        EntityRef.message: EntityKind.MESSAGE,
        EntityRef.wake_condition: EntityKind.WAKE_CONDITION,
    }
    for build, kind in shortcuts.items():
        ref = build("x.1")
        assert (ref.kind, ref.id, ref.privacy, ref.source, ref.redacted_summary) == (
            kind,
            "x.1",
            PrivacyClass.CONTENT_REFS_ONLY,
            None,
            None,
        )


@pytest.mark.parametrize(
    "build, target, destination_kind, entity_kind",
    [
        (RunAddress.run, '{"type":"run","run_id":"id.1"}', "agent", "run"),
        (RunAddress.agent, '{"type":"agent","agent_id":"id.1"}', "agent", "agent"),
        (RunAddress.topic, '{"type":"topic","topic_id":"id.1"}', "topic", "topic"),
        (RunAddress.pool, '{"type":"pool","pool_id":"id.1"}', "agent_pool", "agent_pool"),
    ],
    ids=["run", "agent", "topic", "pool"],
)
def test_run_address_constructors(build, target, destination_kind, entity_kind) -> None:
    address = build("id.1")
    assert wire.encode(address) == (
        '{"target":' + target + ',"destination_ref":{"kind":"' + destination_kind + '","id":"id.1",'
        '"privacy":"content_refs_only","retention":"host_policy"},'
        '"related_refs":[{"kind":"' + entity_kind + '","id":"id.1","privacy":"content_refs_only"}]}'
    )
    assert (
        type(address.target)
        is {"run": RunTarget, "agent": AgentTarget, "topic": TopicTarget, "agent_pool": PoolTarget}[entity_kind]
    )
    assert wire.decode(RunAddress, wire.encode(address)) == address


def test_run_address_constructors_validate_ids() -> None:
    with pytest.raises(InvalidInput, match="identifier is empty"):
        RunAddress.run("")


def test_cursor_contract_and_policy_constructors() -> None:
    assert AgentPoolStoreCursor.start() == AgentPoolStoreCursor(sequence=0)
    assert wire.encode(AgentPoolStoreCursor.start()) == '{"sequence":0}'
    assert wire.encode(AgentPoolStoreCursor.new(7)) == '{"sequence":7}'
    assert AgentPoolStoreCursor.new(U64_MAX).sequence == U64_MAX
    contract = MessageResponseContract.one_response(500)
    assert (contract.expected_responses, contract.timeout_millis) == (1, 500)
    assert wire.encode(contract) == '{"expected_responses":1,"timeout_millis":500}'
    assert wire.encode(MessageResponseContract(expected_responses=U32_MAX)) == '{"expected_responses":4294967295}'
    assert wire.encode(AgentPoolMessagePolicy.bounded_defaults()) == '{"include_sender_in_pool_broadcast":false}'
    assert wire.encode(
        AgentPoolMessagePolicy(required_policy_refs=[PolicyRef.new("policy.x")], include_sender_in_pool_broadcast=True)
    ) == ('{"required_policy_refs":[{"kind":"host","id":"policy.x"}],"include_sender_in_pool_broadcast":true}')
    assert wire.encode(AgentPoolWakePolicy.safe_defaults()) == '{"envelope_only":true}'
    assert AgentPoolWakePolicy.safe_defaults().envelope_only is True


def test_event_filter_constructors() -> None:
    terminal = EventFilter.terminal_run_events()
    assert terminal.families == (EventFamily.RUN,)
    assert terminal.terminal_only is True
    assert terminal.replace(families=ANY, terminal_only=False) == EventFilter()
    assert "run.a" in EventFilter.run("run.a").run_ids
    assert "agent.a" in EventFilter.agent("agent.a").agent_ids
    with pytest.raises(InvalidInput):
        EventFilter.run("")


def test_compile_envelope_filter() -> None:
    criteria = EventFilter(
        run_ids=["run.a"],
        families=["agent_pool"],
        kinds=["run_message_delivered"],
        payload_access="full_payload_if_policy_allows",
    )
    condition = WakeCondition(condition_id="w", run_id="run.b", filter=criteria, idempotency_key="i")
    compiled = condition.compile_envelope_filter()
    assert compiled.payload_access is PayloadAccessMode.ENVELOPE_ONLY
    assert compiled.criteria.payload_access is PayloadAccessMode.ENVELOPE_ONLY
    assert compiled == criteria.replace(payload_access="envelope_only").compile()
    # it is vector 2 of REFERENCE §6.6 once payload access is forced to envelope_only
    assert compiled.filter_fingerprint == "sha256:3bbe52582b576b0e5dcffa6d1ef5c28e946ba93e9a537dc667f7addcebe067d5"
    assert condition.filter.payload_access is PayloadAccessMode.FULL_PAYLOAD_IF_POLICY_ALLOWS
    assert criteria.compile().filter_fingerprint != compiled.filter_fingerprint


# ---------------------------------------------------------------- golden vectors (REFERENCE §6.6)

VECTOR_1 = (
    '{"run_ids":"any","session_ids":"any","agent_ids":"any","turn_ids":"any","families":"any","kinds":"any",'
    '"source_kinds":"any","destination_kinds":"any","subject_kinds":"any","related_entity_kinds":"any",'
    '"correlation_keys":"any","tags":"any","privacy_classes":"any","delivery_semantics":"any","terminal_only":false,'
    '"payload_access":"envelope_only","queue":{"capacity":64,"terminal_reserve":1,"overflow":"drop_non_terminal"}}'
)
VECTOR_2 = (
    '{"run_ids":{"include":["run.a"]},"session_ids":"any","agent_ids":"any","turn_ids":"any",'
    '"families":{"include":["agent_pool"]},"kinds":{"include":["run_message_delivered"]},"source_kinds":"any",'
    '"destination_kinds":"any","subject_kinds":"any","related_entity_kinds":"any","correlation_keys":"any","tags":"any",'
    '"privacy_classes":"any","delivery_semantics":"any","terminal_only":false,"payload_access":"envelope_only",'
    '"queue":{"capacity":64,"terminal_reserve":1,"overflow":"drop_non_terminal"}}'
)


def test_golden_vector_1() -> None:
    criteria = EventFilter()
    assert wire.encode(criteria) == VECTOR_1
    compiled = criteria.compile()
    assert compiled.filter_fingerprint == "sha256:d921a7778382804f8b8ce99b4794e8065e387815cf5a670b3084595989f67548"
    assert compiled.filter_id == "filter.5893e28a60be796092a2aff3d1aeedd99c797fe02b8b21ed6afedabe44eb2f5c"
    assert compiled.indexed_fields == ()
    assert wire.encode(compiled) == (
        '{"filter_id":"filter.5893e28a60be796092a2aff3d1aeedd99c797fe02b8b21ed6afedabe44eb2f5c",'
        '"filter_fingerprint":"sha256:d921a7778382804f8b8ce99b4794e8065e387815cf5a670b3084595989f67548",'
        '"indexed_fields":[],"payload_access":"envelope_only",'
        '"queue":{"capacity":64,"terminal_reserve":1,"overflow":"drop_non_terminal"},"criteria":' + VECTOR_1 + "}"
    )


def test_golden_vector_2() -> None:
    criteria = EventFilter(
        run_ids=["run.a"], families=[EventFamily.AGENT_POOL], kinds=[EventKind.RUN_MESSAGE_DELIVERED]
    )
    assert wire.encode(criteria) == VECTOR_2
    compiled = CompiledEventFilter.new(criteria)
    assert compiled.filter_fingerprint == "sha256:3bbe52582b576b0e5dcffa6d1ef5c28e946ba93e9a537dc667f7addcebe067d5"
    assert compiled.filter_id == "filter.d0762115eabfd91b122f6e95755bf2ac1e78b4d2d124e2165373bdab9dd3db56"
    assert compiled.indexed_fields == (EventIndexField.RUN_ID, EventIndexField.EVENT_FAMILY, EventIndexField.EVENT_KIND)
    assert (compiled.payload_access, compiled.queue, compiled.criteria) == (
        criteria.payload_access,
        criteria.queue,
        criteria,
    )


def test_compile_copies_payload_access_and_queue() -> None:
    queue = SubscriberQueueConfig(capacity=U64_MAX, terminal_reserve=2, overflow="backpressure_caller")
    criteria = EventFilter(payload_access="payload_refs", queue=queue, delivery_semantics=["journal_backed"])
    compiled = criteria.compile()
    assert compiled.payload_access is PayloadAccessMode.PAYLOAD_REFS
    assert compiled.queue == queue
    assert compiled.indexed_fields == (EventIndexField.DELIVERY_SEMANTICS,)
    fingerprint = "sha256:" + hashlib.sha256(wire.encode(criteria).encode()).hexdigest()
    assert compiled.filter_fingerprint == fingerprint
    assert compiled.filter_id == "filter." + hashlib.sha256(fingerprint.encode()).hexdigest()


def test_indexed_fields_in_declaration_order() -> None:
    every = EventFilter(
        delivery_semantics=[],
        privacy_classes=[],
        tags=[],
        correlation_keys=[],
        related_entity_kinds=[],
        subject_kinds=[],
        destination_kinds=[],
        source_kinds=[],
        kinds=[],
        families=[],
        turn_ids=[],
        agent_ids=[],
        session_ids=[],
        run_ids=[],
    )
    assert every.compile().indexed_fields == tuple(EventIndexField)


# ---------------------------------------------------------------- wrong types


@pytest.mark.parametrize(
    "build, field",
    [
        (lambda: AgentPoolMember(run_id=5, agent_id="a"), "run_id"),
        (lambda: AgentPoolMember(run_id=None, agent_id="a"), "run_id"),
        (lambda: AgentPoolMember(run_id=b"run.a", agent_id="a"), "run_id"),
        (lambda: AgentPoolMember(run_id="run.a", agent_id="a", topics="topic"), "topics"),
        (lambda: AgentPoolMember(run_id="run.a", agent_id="a", topics=["ok", 7]), "topics[1]"),
        (
            lambda: AgentPoolMember(run_id="run.a", agent_id="a", policy_refs=[{"kind": "host", "id": "p"}]),
            "policy_refs[0]",
        ),
        (
            lambda: AgentPoolStoredMessage(
                message={"message_id": "m"}, receipt=MessageReceipt(message_id="m", status="accepted")
            ),
            "message",
        ),
        (lambda: AgentPoolStoredMessage(message=message(), receipt=message()), "receipt"),
        (lambda: MessageRecorded(stored=message()), "stored"),
        (lambda: AgentPoolMessagePolicy(include_sender_in_pool_broadcast="true"), "include_sender_in_pool_broadcast"),
        (lambda: AgentPoolWakePolicy(envelope_only=1), "envelope_only"),
        (lambda: AgentPoolStoreCursor(sequence=True), "sequence"),
        (lambda: AgentPoolStoreCursor(sequence=-1), "sequence"),
        (lambda: AgentPoolStoreCursor(sequence=U64_MAX + 1), "sequence"),
        (lambda: AgentPoolStoreCursor(sequence=1.0), "sequence"),
        (lambda: AgentPoolStoreCursor(sequence="1"), "sequence"),
        (lambda: MessageResponseContract(expected_responses=U32_MAX + 1), "expected_responses"),
        (lambda: message(expires_at_millis=-1), "expires_at_millis"),
        (lambda: SubscriberQueueConfig(capacity=0), "capacity"),
        (lambda: SubscriberQueueConfig(terminal_reserve=0), "terminal_reserve"),
        (lambda: AgentPoolMember(run_id="run.a", agent_id="a", bogus=1), "bogus"),
        (
            lambda: RunAddress(
                target=AgentPoolMember(run_id="r", agent_id="a"), destination_ref=DestinationRef.new("d")
            ),
            "target",
        ),
        (
            lambda: AgentPoolStoreRecord(
                pool_id="p", cursor=AgentPoolStoreCursor.start(), payload=AgentPoolMember(run_id="r", agent_id="a")
            ),
            "payload",
        ),
        (lambda: EventFilter(run_ids="run.a"), "run_ids"),
        (lambda: EventFilter(terminal_only=None), "terminal_only"),
        (
            lambda: CompiledEventFilter(
                filter_id=1,
                filter_fingerprint="f",
                indexed_fields=[],
                payload_access="envelope_only",
                queue=SubscriberQueueConfig(),
                criteria=EventFilter(),
            ),
            "filter_id",
        ),
        (lambda: PolicyRef(kind="host", id="p", version=1), "version"),
        (
            lambda: RunMessage(message_id="m", from_="", to=RunAddress.run("r"), content_ref="c", idempotency_key="i"),
            "from_",
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_wrong_types_raise_invalid_input(build, field) -> None:
    with pytest.raises(InvalidInput) as caught:
        build()
    assert isinstance(caught.value, ValueError)
    assert field in caught.value.message, caught.value.message


def test_replace_validates() -> None:
    member = AgentPoolMember(run_id="run.a", agent_id="agent.a")
    assert member.replace(topics=["t"]).topics == ("t",)
    assert member.topics == ()
    with pytest.raises(InvalidInput, match="run_id"):
        member.replace(run_id="")


# ---------------------------------------------------------------- pickling


@pytest.mark.parametrize(
    "obj",
    [
        AgentPoolMember(
            run_id="run.é",
            agent_id='agent "q"',
            topics=["t"],
            policy_refs=[PolicyRef(kind="host", id="p", version="1")],
        ),
        message(
            reply_to="msg.0", response_contract=MessageResponseContract.one_response(None), expires_at_millis=U64_MAX
        ),
        WakeRecorded(stored=wake()),
        EventFilter(run_ids=(), tags=["x"]),
        AgentPoolSnapshot(
            pool_id="p",
            created=True,
            members=[AgentPoolMember(run_id="r", agent_id="a")],
            topics=[],
            message_policy=AgentPoolMessagePolicy(),
            wake_policy=AgentPoolWakePolicy(),
            messages=[
                AgentPoolStoredMessage(
                    message=message(), receipt=MessageReceipt(message_id="msg.1", status="delivered")
                )
            ],
            wakes=[wake()],
            cursor=AgentPoolStoreCursor.new(9),
        ),
        PoolCreated(),
        AgentPoolStoreRecord(
            pool_id="p", cursor=AgentPoolStoreCursor.new(1), payload=PoolOpened(config=AgentPoolStoreConfig())
        ),
    ],
    ids=lambda obj: type(obj).__name__,
)
def test_pickle_roundtrip(obj) -> None:
    for protocol in (2, pickle.HIGHEST_PROTOCOL):
        copied = pickle.loads(pickle.dumps(obj, protocol=protocol))
        assert copied == obj
        assert type(copied) is type(obj)
        assert wire.encode(copied) == wire.encode(obj)
    assert copy.deepcopy(obj) == obj


def test_pickled_filter_keeps_the_any_singleton() -> None:
    copied = pickle.loads(pickle.dumps(EventFilter()))
    assert copied.run_ids is ANY


@pytest.mark.parametrize(
    "error",
    [
        AgentError(AgentErrorKind.TIMEOUT, RetryClassification.RETRYABLE, "slow"),
        AgentError.contract_violation("cv"),
        AgentError.host_configuration_needed("hc"),
        AgentError.missing_required_field("pool_id"),
        InvalidInput("bad input"),
        AgentError(
            "PolicyDenial",
            "UserActionNeeded",
            "denied",
            context=ErrorContext(
                message="denied", policy_refs=[PolicyRef.new("policy.deny")], subject=EntityRef.run("run.a")
            ),
            causal_ids=CausalIds(run_id="run.b"),
        ),
    ],
    ids=lambda error: f"{type(error).__name__}-{error.variant}-{error.message}",
)
def test_error_pickle_roundtrip(error) -> None:
    copied = pickle.loads(pickle.dumps(error))
    assert type(copied) is type(error)
    assert copied == error
    assert (copied.variant, copied.kind, copied.retry, copied.message, str(copied)) == (
        error.variant,
        error.kind,
        error.retry,
        error.message,
        str(error),
    )
    assert wire.encode(copied) == wire.encode(error)


# ---------------------------------------------------------------- errors


CLASSIFIED_EMPTY = (
    '{"Classified":{"kind":"InvalidStateTransition","retry":"NotRetryable","context":{"message":"msg","policy_refs":[],'
    '"source":null,"destination":null,"subject":null,"privacy":null,"redacted_summary":null},"causal_ids":{"run_id":null,'
    '"turn_id":null,"attempt_id":null,"event_id":null,"tool_call_id":null,"span_id":null,"related":[]}}}'
)


def test_error_constructors() -> None:
    classified = AgentError(AgentErrorKind.INVALID_STATE_TRANSITION, RetryClassification.NOT_RETRYABLE, "msg")
    assert (classified.variant, str(classified)) == ("Classified", "InvalidStateTransition: msg")
    assert wire.encode(classified) == CLASSIFIED_EMPTY
    cv = AgentError.contract_violation("cv")
    assert (cv.variant, cv.kind, cv.retry, cv.message, str(cv)) == (
        "ContractViolation",
        AgentErrorKind.INVALID_STATE_TRANSITION,
        RetryClassification.REPAIR_NEEDED,
        "cv",
        "contract violation: cv",
    )
    assert wire.encode(cv) == '{"ContractViolation":{"message":"cv"}}'
    hc = AgentError.host_configuration_needed("hc")
    assert (hc.variant, hc.kind, hc.retry, str(hc)) == (
        "HostConfigurationNeeded",
        AgentErrorKind.HOST_CONFIGURATION_NEEDED,
        RetryClassification.HOST_CONFIGURATION_NEEDED,
        "host configuration needed: hc",
    )
    assert wire.encode(hc) == '{"HostConfigurationNeeded":{"message":"hc"}}'
    mf = AgentError.missing_required_field("f")
    assert (mf.variant, mf.kind, mf.retry, mf.message, str(mf)) == (
        "MissingRequiredField",
        AgentErrorKind.INVALID_PACKAGE,
        RetryClassification.HOST_CONFIGURATION_NEEDED,
        "f",
        "missing required field: f",
    )
    assert wire.encode(mf) == '{"MissingRequiredField":{"field":"f"}}'
    for error in (classified, cv, hc, mf):
        assert isinstance(error, Exception)
        assert wire.decode(AgentError, wire.encode(error)) == error


def test_error_default_context_and_causal_ids() -> None:
    error = AgentError(AgentErrorKind.TIMEOUT, RetryClassification.RETRYABLE, "slow")
    assert error.context == ErrorContext(message="slow")
    assert error.context.policy_refs == () and error.context.source is None
    assert error.causal_ids == CausalIds()
    assert error.causal_ids.related == () and error.causal_ids.run_id is None


def test_error_variants_stay_distinct() -> None:
    cv = AgentError.contract_violation("x")
    classified = AgentError(AgentErrorKind.INVALID_STATE_TRANSITION, RetryClassification.REPAIR_NEEDED, "x")
    assert (cv.kind, cv.retry, cv.message) == (classified.kind, classified.retry, classified.message)
    assert cv != classified
    assert AgentError.contract_violation("x") == cv
    assert AgentError.contract_violation("y") != cv
    hc = AgentError.host_configuration_needed("x")
    assert hc != AgentError(
        AgentErrorKind.HOST_CONFIGURATION_NEEDED, RetryClassification.HOST_CONFIGURATION_NEEDED, "x"
    )
    assert len({cv, classified, AgentError.contract_violation("x")}) == 2
    with_context = AgentError(
        AgentErrorKind.INVALID_STATE_TRANSITION,
        RetryClassification.REPAIR_NEEDED,
        "x",
        causal_ids=CausalIds(run_id="run.b"),
    )
    assert with_context != classified


def test_invalid_input_is_a_value_error_and_an_agent_error() -> None:
    error = InvalidInput("field: rule")
    assert isinstance(error, ValueError) and isinstance(error, AgentError)
    assert issubclass(InvalidInput, ValueError) and issubclass(InvalidInput, AgentError)
    assert (error.kind, error.retry, error.message, error.variant) == (
        AgentErrorKind.INVALID_STATE_TRANSITION,
        RetryClassification.NOT_RETRYABLE,
        "field: rule",
        "Classified",
    )
    with pytest.raises(ValueError):
        AgentPoolMember(run_id="", agent_id="a")
    with pytest.raises(AgentError):
        wire.decode(AgentPoolMember, "{}")


# ---------------------------------------------------------------- enums

SNAKE_ENUMS = {
    PolicyKind: 9,
    DestinationKind: 16,
    EntityKind: 31,
    SourceKind: 15,
    PrivacyClass: 5,
    RetentionClass: 6,
    TrustClass: 6,
    MessageStatus: 7,
    ResumeInputPolicy: 3,
    WakeRegistrationStatus: 5,
    EventFamily: 20,
    EventKind: 119,
    EventDeliverySemantics: 4,
    PayloadAccessMode: 4,
    SubscriberOverflowPolicy: 5,
    EventIndexField: 14,
}
AGENT_ERROR_KINDS = [
    "InvalidPackage",
    "InvalidStateTransition",
    "ProviderFailure",
    "ProjectionFailure",
    "ToolFailure",
    "ApprovalFailure",
    "PolicyDenial",
    "JournalFailure",
    "TelemetryFailure",
    "IsolationFailure",
    "StructuredOutputFailure",
    "StreamRuleFailure",
    "SubagentFailure",
    "ExtensionFailure",
    "Cancellation",
    "ChildLifecycleFailure",
    "HookFailure",
    "Timeout",
    "RecoveryRepairNeeded",
    "HostConfigurationNeeded",
]
RETRY_CLASSES = ["Retryable", "NotRetryable", "RepairNeeded", "UserActionNeeded", "HostConfigurationNeeded"]
# REFERENCE §8.3, in its order
TERMINAL = """
run_completed run_failed run_cancelled turn_completed turn_failed model_message_completed model_attempt_failed
tool_completed tool_failed tool_denied tool_recovery_required approval_dispatch_unavailable approval_responded
approval_denied approval_timed_out approval_cancelled hook_completed hook_failed hook_timed_out hook_cancelled
hook_response_applied hook_response_rejected realtime_restart_failed realtime_closed isolation_cleanup_completed
isolation_cleanup_failed isolation_failed child_lifecycle_completed child_lifecycle_detached subagent_completed
extension_action_completed extension_action_failed extension_action_denied output_dispatch_completed
output_dispatch_failed output_dispatch_deduped structured_output_validated structured_output_failed replay_completed
replay_failed run_message_responded run_message_failed run_message_timed_out run_message_expired run_message_cancelled
wake_condition_triggered wake_condition_timed_out wake_condition_cancelled wake_condition_failed
""".split()


@pytest.mark.parametrize(
    "enum_cls, count", list(SNAKE_ENUMS.items()), ids=lambda value: getattr(value, "__name__", None)
)
def test_snake_case_enums(enum_cls, count) -> None:
    assert len(enum_cls) == count
    assert issubclass(enum_cls, str)
    for member in enum_cls:
        assert member.name == member.value.upper()
        assert member.value == member.value.lower() and " " not in member.value
        assert member == member.value
        assert str(member) == member.value
        assert enum_cls(member.value) is member


def test_pascal_case_enums() -> None:
    assert [member.value for member in AgentErrorKind] == AGENT_ERROR_KINDS
    assert [member.value for member in RetryClassification] == RETRY_CLASSES
    for enum_cls in (AgentErrorKind, RetryClassification):
        assert issubclass(enum_cls, str)
        for member in enum_cls:
            assert "".join(part.capitalize() for part in member.name.split("_")) == member.value
    assert AgentErrorKind.INVALID_STATE_TRANSITION.value == "InvalidStateTransition"
    assert AgentErrorKind.RECOVERY_REPAIR_NEEDED == "RecoveryRepairNeeded"
    assert RetryClassification.NOT_RETRYABLE.value == "NotRetryable"


def test_enum_spot_values() -> None:
    assert MessageStatus.TIMED_OUT.value == "timed_out"
    assert EventKind.RUN_MESSAGE_DELIVERED.value == "run_message_delivered"
    assert list(EventKind)[0] is EventKind.RUN_STARTED and list(EventKind)[-1] is EventKind.WAKE_CONDITION_FAILED
    assert [member.value for member in ResumeInputPolicy] == ["matching_event_refs", "redacted_summary", "none"]
    assert [member.value for member in MessageStatus] == [
        "accepted",
        "delivered",
        "responded",
        "failed",
        "timed_out",
        "expired",
        "cancelled",
    ]


def test_terminal_event_kinds() -> None:
    assert len(TERMINAL) == 49
    assert len(TERMINAL_EVENT_KINDS) == 49
    assert {kind.value for kind in TERMINAL_EVENT_KINDS} == set(TERMINAL)
    for kind in (
        EventKind.RUN_MESSAGE_ACCEPTED,
        EventKind.RUN_MESSAGE_DELIVERED,
        EventKind.WAKE_CONDITION_REGISTERED,
        EventKind.AGENT_POOL_CREATED,
        EventKind.AGENT_POOL_RUN_JOINED,
        EventKind.AGENT_POOL_RUN_LEFT,
    ):
        assert kind not in TERMINAL_EVENT_KINDS


def test_public_names() -> None:
    for name in fastpool.__all__:
        assert hasattr(fastpool, name), name
    assert isinstance(fastpool.USE_EXTENSIONS, bool)
