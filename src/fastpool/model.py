"""The value classes the store persists, field for field as the Rust crate's structs.

Fields are declared in Rust declaration order, which is the wire order; construction
is by keyword (``RunMessage.from_`` is the wire key ``from``). Every instance is
immutable and validated: a bad id or a wrong type raises ``InvalidInput`` naming the
field.

>>> member = AgentPoolMember(run_id="run.a", agent_id="agent.a", topics=["topic.t"])
>>> member.topics
('topic.t',)
>>> RunAddress.run("run.b").destination_ref.kind
DestinationKind.AGENT
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import ClassVar, Union

import orjson

from ._schema import ANY, FilterSet, Model, NonZeroInt, U32Int, U64Int, to_plain
from .enums import (
    AgentPoolLifecycleStatus,
    ContentCaptureMode,
    DestinationKind,
    EffectKind,
    EffectTerminalStatus,
    EntityKind,
    EventDeliverySemantics,
    EventFamily,
    EventIndexField,
    EventKind,
    EventOverflowReason,
    JournalRecordKind,
    MessageStatus,
    PayloadAccessMode,
    PolicyKind,
    PrivacyClass,
    ResumeInputPolicy,
    RetentionClass,
    SourceKind,
    SubscriberOverflowPolicy,
    TrustClass,
    WakeRegistrationStatus,
)
from .ids import (
    AgentId,
    AgentPoolId,
    ContentRef,
    CorrelationKey,
    CorrelationValue,
    DestinationId,
    EntityId,
    IdempotencyKey,
    JournalCursor,
    MessageId,
    PolicyId,
    RunId,
    SessionId,
    SourceId,
    TopicId,
    TurnId,
    WakeConditionId,
)

__all__ = [
    "ANY",
    "PolicyRef",
    "CorrelationEntry",
    "SourceRef",
    "DestinationRef",
    "EntityRef",
    "ErrorContext",
    "CausalIds",
    "AgentPoolMember",
    "AgentPoolMessagePolicy",
    "AgentPoolWakePolicy",
    "AgentPoolStoreConfig",
    "AgentPoolStoreCursor",
    "RunTarget",
    "AgentTarget",
    "TopicTarget",
    "PoolTarget",
    "RunAddressTarget",
    "RunAddress",
    "EventCorrelation",
    "MessageResponseContract",
    "RunMessage",
    "MessageReceipt",
    "AgentPoolStoredMessage",
    "SubscriberQueueConfig",
    "EventFilter",
    "CompiledEventFilter",
    "WakeCondition",
    "WakeRegistration",
    "AgentPoolStoredWake",
    "AgentPoolSnapshot",
    "PoolOpened",
    "PoolCreated",
    "MemberJoined",
    "MemberLeft",
    "MessageRecorded",
    "WakeRecorded",
    "AgentPoolStoreRecordPayload",
    "AgentPoolStoreRecord",
    "PAYLOAD_TYPES",
    "CausalRef",
    "EventEnvelope",
    "EnvelopeOnlyPayload",
    "RedactedSummaryPayload",
    "EventPayload",
    "AgentEvent",
    "AllScope",
    "RunScope",
    "AgentScope",
    "FilterScope",
    "EventStreamScope",
    "ALL_EVENTS",
    "EventCursor",
    "ArchiveCursor",
    "EventOverflowNotice",
    "EventFrame",
    "EventIndexProjection",
    "EffectIntent",
    "EffectResult",
    "AgentPoolRecord",
    "RunMessageRecord",
    "WakeRecord",
    "JournalRecordPayload",
    "JournalRecord",
]


class PolicyRef(Model):
    """A reference to a policy; equality includes ``version``."""

    _shared = True

    kind: PolicyKind
    id: PolicyId
    version: str | None = None

    @classmethod
    def new(cls, id: str) -> PolicyRef:
        """A ``HOST`` policy ref without a version."""
        return cls(kind=PolicyKind.HOST, id=id)

    @classmethod
    def with_kind(cls, kind: PolicyKind | str, id: str) -> PolicyRef:
        """A policy ref of ``kind`` without a version."""
        return cls(kind=PolicyKind(kind), id=id)


class CorrelationEntry(Model):
    """One correlation key and value (both validated ids)."""

    key: CorrelationKey
    value: CorrelationValue


class SourceRef(Model):
    """Where something came from: a source kind and id, with its trust and privacy."""

    kind: SourceKind
    id: SourceId
    trust: TrustClass = TrustClass.HOST_PROVIDED
    privacy: PrivacyClass = PrivacyClass.CONTENT_REFS_ONLY
    correlation: tuple[CorrelationEntry, ...] = ()
    redacted_summary: str | None = None


class DestinationRef(Model):
    """Where something goes: a destination kind and id, with its privacy and retention."""

    kind: DestinationKind
    id: DestinationId
    privacy: PrivacyClass = PrivacyClass.CONTENT_REFS_ONLY
    retention: RetentionClass = RetentionClass.HOST_POLICY
    correlation: tuple[CorrelationEntry, ...] = ()
    redacted_summary: str | None = None

    @classmethod
    def new(cls, id: str) -> DestinationRef:
        """A ``HOST`` destination with the default privacy and retention."""
        return cls(kind=DestinationKind.HOST, id=id)

    @classmethod
    def with_kind(cls, kind: DestinationKind | str, id: str) -> DestinationRef:
        """A destination of ``kind`` with the default privacy and retention, no correlation."""
        return cls(kind=DestinationKind(kind), id=id)


class EntityRef(Model):
    """A reference to an entity (a run, agent, pool, topic, message ...) by kind and id."""

    kind: EntityKind
    id: EntityId
    source: SourceRef | None = None
    privacy: PrivacyClass = PrivacyClass.CONTENT_REFS_ONLY
    redacted_summary: str | None = None

    @classmethod
    def run(cls, id: str) -> EntityRef:
        """A ``RUN`` entity ref."""
        return cls(kind=EntityKind.RUN, id=id)

    @classmethod
    def agent(cls, id: str) -> EntityRef:
        """A ``AGENT`` entity ref."""
        return cls(kind=EntityKind.AGENT, id=id)

    @classmethod
    def agent_pool(cls, id: str) -> EntityRef:
        """A ``AGENT_POOL`` entity ref."""
        return cls(kind=EntityKind.AGENT_POOL, id=id)

    @classmethod
    def topic(cls, id: str) -> EntityRef:
        """A ``TOPIC`` entity ref."""
        return cls(kind=EntityKind.TOPIC, id=id)

    @classmethod
    def message(cls, id: str) -> EntityRef:
        """A ``MESSAGE`` entity ref."""
        return cls(kind=EntityKind.MESSAGE, id=id)

    @classmethod
    def wake_condition(cls, id: str) -> EntityRef:
        """A ``WAKE_CONDITION`` entity ref."""
        return cls(kind=EntityKind.WAKE_CONDITION, id=id)


class ErrorContext(Model):
    """The context of an ``AgentError`` (no serde attributes: None is written as null)."""

    _plain_serde = True
    message: str
    policy_refs: tuple[PolicyRef, ...] = ()
    source: SourceRef | None = None
    destination: DestinationRef | None = None
    subject: EntityRef | None = None
    privacy: PrivacyClass | None = None
    redacted_summary: str | None = None


class CausalIds(Model):
    """The causal ids of an ``AgentError`` (no serde attributes: None is written as null)."""

    _plain_serde = True
    run_id: RunId | None = None
    turn_id: TurnId | None = None
    attempt_id: EntityId | None = None
    event_id: EntityId | None = None
    tool_call_id: EntityId | None = None
    span_id: EntityId | None = None
    related: tuple[EntityRef, ...] = ()


class AgentPoolMember(Model):
    """A run in a pool: its agent, the policy refs it satisfies and the topics it listens to."""

    run_id: RunId
    agent_id: AgentId
    policy_refs: tuple[PolicyRef, ...] = ()
    topics: tuple[TopicId, ...] = ()


class AgentPoolMessagePolicy(Model):
    """Which messages a pool lets through, and whether a pool broadcast reaches its sender."""

    required_policy_refs: tuple[PolicyRef, ...] = ()
    include_sender_in_pool_broadcast: bool = False

    @classmethod
    def bounded_defaults(cls) -> AgentPoolMessagePolicy:
        """No required refs; a pool broadcast does not reach its sender."""
        return cls()


class AgentPoolWakePolicy(Model):
    """Whether the pool's wake filters see event envelopes only."""

    envelope_only: bool = True

    @classmethod
    def safe_defaults(cls) -> AgentPoolWakePolicy:
        """``envelope_only=True``: wake filters never see event payloads."""
        return cls()


class AgentPoolStoreConfig(Model):
    """A pool's config, fixed by its first ``open_pool``; an unequal one later is a conflict."""

    _shared = True

    message_policy: AgentPoolMessagePolicy = AgentPoolMessagePolicy()
    wake_policy: AgentPoolWakePolicy = AgentPoolWakePolicy()
    policy_refs: tuple[PolicyRef, ...] = ()


class AgentPoolStoreCursor(Model):
    """A per-pool record position: the first record is 1."""

    sequence: U64Int

    @classmethod
    def start(cls) -> AgentPoolStoreCursor:
        """The cursor before any record (sequence 0)."""
        return cls(sequence=0)

    @classmethod
    def new(cls, sequence: int) -> AgentPoolStoreCursor:
        """The cursor at ``sequence``."""
        return cls(sequence=sequence)


class RunTarget(Model):
    """A ``RunAddressTarget``: one run."""

    TYPE: ClassVar[str] = "run"
    run_id: RunId


class AgentTarget(Model):
    """A ``RunAddressTarget``: every member run of one agent."""

    TYPE: ClassVar[str] = "agent"
    agent_id: AgentId


class TopicTarget(Model):
    """A ``RunAddressTarget``: every member run listening to one topic."""

    TYPE: ClassVar[str] = "topic"
    topic_id: TopicId


class PoolTarget(Model):
    """A ``RunAddressTarget``: every member of the pool (a broadcast)."""

    TYPE: ClassVar[str] = "pool"
    pool_id: AgentPoolId


RunAddressTarget = Union[RunTarget, AgentTarget, TopicTarget, PoolTarget]
"""Whom a ``RunAddress`` targets (wire: internally tagged by ``type``)."""


class RunAddress(Model):
    """Where a run message goes: its target, destination ref and related refs."""

    _shared = True

    target: RunAddressTarget
    destination_ref: DestinationRef
    related_refs: tuple[EntityRef, ...] = ()

    @classmethod
    def run(cls, run_id: str) -> RunAddress:
        """An address of ``run_id`` (destination kind ``AGENT``, one related ref ``EntityRef.run``)."""
        return cls(
            target=RunTarget(run_id=run_id),
            destination_ref=DestinationRef.with_kind(DestinationKind.AGENT, run_id),
            related_refs=(EntityRef.run(run_id),),
        )

    @classmethod
    def agent(cls, agent_id: str) -> RunAddress:
        """An address of ``agent_id`` (destination kind ``AGENT``, one related ref ``EntityRef.agent``)."""
        return cls(
            target=AgentTarget(agent_id=agent_id),
            destination_ref=DestinationRef.with_kind(DestinationKind.AGENT, agent_id),
            related_refs=(EntityRef.agent(agent_id),),
        )

    @classmethod
    def topic(cls, topic_id: str) -> RunAddress:
        """An address of ``topic_id`` (destination kind ``TOPIC``, one related ref ``EntityRef.topic``)."""
        return cls(
            target=TopicTarget(topic_id=topic_id),
            destination_ref=DestinationRef.with_kind(DestinationKind.TOPIC, topic_id),
            related_refs=(EntityRef.topic(topic_id),),
        )

    @classmethod
    def pool(cls, pool_id: str) -> RunAddress:
        """An address of ``pool_id`` (destination kind ``AGENT_POOL``, one related ref ``EntityRef.agent_pool``)."""
        return cls(
            target=PoolTarget(pool_id=pool_id),
            destination_ref=DestinationRef.with_kind(DestinationKind.AGENT_POOL, pool_id),
            related_refs=(EntityRef.agent_pool(pool_id),),
        )


class EventCorrelation(Model):
    """The correlation entries of a message (wire: written ``{}`` when empty)."""

    # Not ``_shared``: a correlation often names one message or trace, and kept in the
    # reader's table it would push out the values that do recur.

    entries: tuple[CorrelationEntry, ...] = ()


class MessageResponseContract(Model):
    """How many responses a message expects, and within how many milliseconds."""

    _shared = True

    expected_responses: U32Int
    timeout_millis: U64Int | None = None

    @classmethod
    def one_response(cls, timeout_millis: int | None) -> MessageResponseContract:
        """One expected response within ``timeout_millis`` (``None``: no timeout)."""
        return cls(expected_responses=1, timeout_millis=timeout_millis)


class RunMessage(Model):
    """One run message; ``from_`` is the sender (wire key ``from``)."""

    message_id: MessageId
    from_: RunId
    to: RunAddress
    content_ref: ContentRef
    correlation: EventCorrelation = EventCorrelation()
    reply_to: MessageId | None = None
    response_contract: MessageResponseContract | None = None
    expires_at_millis: U64Int | None = None
    idempotency_key: IdempotencyKey
    policy_refs: tuple[PolicyRef, ...] = ()


class MessageReceipt(Model):
    """A message's status and the runs it was delivered to, as one transition records it."""

    message_id: MessageId
    status: MessageStatus
    delivered_to: tuple[RunId, ...] = ()
    journal_cursor: JournalCursor | None = None


class AgentPoolStoredMessage(Model):
    """One message status transition, stored for rehydration and dedupe."""

    message: RunMessage
    receipt: MessageReceipt


class SubscriberQueueConfig(Model):
    """A subscriber's queue: capacity, slots kept for terminal events, and what a full queue does."""

    _shared = True

    capacity: NonZeroInt = 64
    terminal_reserve: NonZeroInt = 1
    overflow: SubscriberOverflowPolicy = SubscriberOverflowPolicy.DROP_NON_TERMINAL


# Filter sets in declaration order with the index field each one fills (as Rust's).
_INDEX_FIELDS = (
    ("run_ids", EventIndexField.RUN_ID),
    ("session_ids", EventIndexField.SESSION_ID),
    ("agent_ids", EventIndexField.AGENT_ID),
    ("turn_ids", EventIndexField.TURN_ID),
    ("families", EventIndexField.EVENT_FAMILY),
    ("kinds", EventIndexField.EVENT_KIND),
    ("source_kinds", EventIndexField.SOURCE),
    ("destination_kinds", EventIndexField.DESTINATION),
    ("subject_kinds", EventIndexField.SUBJECT_KIND),
    ("related_entity_kinds", EventIndexField.RELATED_ENTITY_KIND),
    ("correlation_keys", EventIndexField.CORRELATION_KEY),
    ("tags", EventIndexField.TAG),
    ("privacy_classes", EventIndexField.PRIVACY),
    ("delivery_semantics", EventIndexField.DELIVERY_SEMANTICS),
)


class EventFilter(Model):
    """Subscription criteria: each set is ``ANY`` or a tuple of the values to include."""

    _shared = True

    run_ids: FilterSet[RunId] = ANY
    session_ids: FilterSet[SessionId] = ANY
    agent_ids: FilterSet[AgentId] = ANY
    turn_ids: FilterSet[TurnId] = ANY
    families: FilterSet[EventFamily] = ANY
    kinds: FilterSet[EventKind] = ANY
    source_kinds: FilterSet[SourceKind] = ANY
    destination_kinds: FilterSet[DestinationKind] = ANY
    subject_kinds: FilterSet[EntityKind] = ANY
    related_entity_kinds: FilterSet[EntityKind] = ANY
    correlation_keys: FilterSet[CorrelationKey] = ANY
    tags: FilterSet[str] = ANY
    privacy_classes: FilterSet[PrivacyClass] = ANY
    delivery_semantics: FilterSet[EventDeliverySemantics] = ANY
    terminal_only: bool = False
    payload_access: PayloadAccessMode = PayloadAccessMode.ENVELOPE_ONLY
    queue: SubscriberQueueConfig = SubscriberQueueConfig()

    @classmethod
    def run(cls, run_id: str) -> EventFilter:
        """Events of one run."""
        return cls(run_ids=(run_id,))

    @classmethod
    def agent(cls, agent_id: str) -> EventFilter:
        """Events of one agent."""
        return cls(agent_ids=(agent_id,))

    @classmethod
    def terminal_run_events(cls) -> EventFilter:
        """Terminal events of the ``run`` family."""
        return cls(families=(EventFamily.RUN,), terminal_only=True)

    def compile(self) -> CompiledEventFilter:
        """The compiled filter: fingerprint and id are SHA-256 of the criteria's wire JSON.

        >>> EventFilter().compile().filter_fingerprint[:15]
        'sha256:d921a777'
        """
        # The wire text (``wire.encode``) as the schema writes it: the engines sit above the model.
        fingerprint = "sha256:" + hashlib.sha256(orjson.dumps(to_plain(self))).hexdigest()
        return CompiledEventFilter(
            filter_id="filter." + hashlib.sha256(fingerprint.encode("utf-8")).hexdigest(),
            filter_fingerprint=fingerprint,
            indexed_fields=tuple(index for name, index in _INDEX_FIELDS if getattr(self, name) is not ANY),
            payload_access=self.payload_access,
            queue=self.queue,
            criteria=self,
        )


class CompiledEventFilter(Model):
    """A compiled ``EventFilter``; decoding keeps the stored id and fingerprint unchecked."""

    _shared = True

    _required_vecs = frozenset({"indexed_fields"})
    filter_id: str
    filter_fingerprint: str
    indexed_fields: tuple[EventIndexField, ...]
    payload_access: PayloadAccessMode
    queue: SubscriberQueueConfig
    criteria: EventFilter

    @classmethod
    def new(cls, criteria: EventFilter) -> CompiledEventFilter:
        """``criteria.compile()``."""
        return criteria.compile()


class WakeCondition(Model):
    """What wakes a suspended run: an event filter, an optional timeout and what it resumes with."""

    condition_id: WakeConditionId
    run_id: RunId
    filter: EventFilter
    timeout_millis: U64Int | None = None
    resume_with: ResumeInputPolicy = ResumeInputPolicy.MATCHING_EVENT_REFS
    idempotency_key: IdempotencyKey
    policy_refs: tuple[PolicyRef, ...] = ()

    def compile_envelope_filter(self) -> CompiledEventFilter:
        """The condition's filter with ``payload_access = envelope_only``, compiled."""
        criteria: EventFilter = self.filter.replace(payload_access=PayloadAccessMode.ENVELOPE_ONLY)
        return criteria.compile()


class WakeRegistration(Model):
    """A wake condition's status, as one transition records it."""

    condition_id: WakeConditionId
    run_id: RunId
    status: WakeRegistrationStatus
    journal_cursor: JournalCursor | None = None


class AgentPoolStoredWake(Model):
    """One wake status transition, stored: the condition, its compiled filter and the registration."""

    condition: WakeCondition
    compiled_filter: CompiledEventFilter
    registration: WakeRegistration


class AgentPoolSnapshot(Model):
    """A pool's durable state, derived only from its records.

    A store's snapshots hold ``messages`` and ``wakes`` as ``ChunkedTuple``s (successive
    snapshots share their unchanged parts); they compare equal to tuples of the same items.
    """

    _required_vecs = frozenset({"members", "topics"})
    pool_id: AgentPoolId
    created: bool
    members: tuple[AgentPoolMember, ...]
    topics: tuple[TopicId, ...]
    message_policy: AgentPoolMessagePolicy
    wake_policy: AgentPoolWakePolicy
    policy_refs: tuple[PolicyRef, ...] = ()
    messages: Sequence[AgentPoolStoredMessage] = ()
    wakes: Sequence[AgentPoolStoredWake] = ()
    cursor: AgentPoolStoreCursor | None = None


class PoolOpened(Model):
    """Record payload ``pool_opened``: the pool was opened with this config."""

    TYPE: ClassVar[str] = "pool_opened"
    config: AgentPoolStoreConfig


class PoolCreated(Model):
    """Record payload ``pool_created``: the pool was marked created."""

    TYPE: ClassVar[str] = "pool_created"


class MemberJoined(Model):
    """Record payload ``member_joined``: a run joined."""

    TYPE: ClassVar[str] = "member_joined"
    member: AgentPoolMember


class MemberLeft(Model):
    """Record payload ``member_left``: a run left (the removed member)."""

    TYPE: ClassVar[str] = "member_left"
    member: AgentPoolMember


class MessageRecorded(Model):
    """Record payload ``run_message``: a message status transition."""

    TYPE: ClassVar[str] = "run_message"
    stored: AgentPoolStoredMessage


class WakeRecorded(Model):
    """Record payload ``wake``: a wake status transition."""

    TYPE: ClassVar[str] = "wake"
    stored: AgentPoolStoredWake


AgentPoolStoreRecordPayload = Union[PoolOpened, PoolCreated, MemberJoined, MemberLeft, MessageRecorded, WakeRecorded]
"""The payload of a record: one of the six payload classes (wire: internally tagged by ``type``)."""
PAYLOAD_TYPES: dict[str, type[Model]] = {
    cls.TYPE: cls for cls in (PoolOpened, PoolCreated, MemberJoined, MemberLeft, MessageRecorded, WakeRecorded)
}


class AgentPoolStoreRecord(Model):
    """One durable record of a pool: its cursor and payload."""

    pool_id: AgentPoolId
    cursor: AgentPoolStoreCursor
    payload: AgentPoolStoreRecordPayload


# ---------------------------------------------------------------- events and journal records (the coordinator's)
#
# What the coordinator publishes and journals, in the field order and serde attributes of
# agent-sdk-core's records. ``session_id`` appears in no recorded Rust flow; it sits after ``run_id``
# ("run, session and agent", as the Rust coordinator names them). Rust's ``u16`` versions are ``U32Int``
# here (decoding accepts up to 2**32 - 1 where serde stops at 65,535).


class CausalRef(Model):
    """What caused an event: an event id and/or an entity, with a redacted reason."""

    event_id: EntityId | None = None
    subject_ref: EntityRef
    reason: str | None = None


class EventEnvelope(Model):
    """The routable part of an event: ids, kind, refs, privacy (never the content)."""

    schema_version: U32Int
    event_id: EntityId
    event_seq: U64Int
    event_family: EventFamily
    event_kind: EventKind
    payload_schema_version: U32Int
    timestamp: str
    recorded_at: str
    run_id: RunId
    session_id: SessionId | None = None
    agent_id: AgentId
    turn_id: TurnId | None = None
    attempt_id: EntityId | None = None
    message_id: MessageId | None = None
    context_item_id: EntityId | None = None
    trace_id: EntityId
    span_id: EntityId
    parent_event_id: EntityId | None = None
    caused_by: CausalRef | None = None
    subject_ref: EntityRef
    related_refs: tuple[EntityRef, ...] = ()
    causal_refs: tuple[CausalRef, ...] = ()
    correlation: EventCorrelation = EventCorrelation()
    tags: tuple[str, ...] = ()
    source: SourceRef
    destination: DestinationRef | None = None
    policy_refs: tuple[PolicyRef, ...] = ()
    journal_cursor: JournalCursor | None = None
    state_before: str | None = None
    state_after: str | None = None
    delivery_semantics: EventDeliverySemantics
    privacy: PrivacyClass
    content_capture: ContentCaptureMode
    redaction_policy_id: str
    runtime_package_fingerprint: str


class EnvelopeOnlyPayload(Model):
    """``EventPayload`` ``envelope_only``: no payload (wire: ``{"mode":"envelope_only"}``)."""

    TAG: ClassVar[str] = "envelope_only"
    _tag_key = "mode"


class RedactedSummaryPayload(Model):
    """``EventPayload`` ``redacted_summary``: a summary safe to show, and refs to the payload."""

    TAG: ClassVar[str] = "redacted_summary"
    _tag_key = "mode"
    redacted_summary: str
    payload_refs: tuple[EntityRef, ...] = ()


EventPayload = Union[EnvelopeOnlyPayload, RedactedSummaryPayload]
"""An event's payload (wire: internally tagged by ``mode``)."""


class AgentEvent(Model):
    """One event: its envelope and payload."""

    envelope: EventEnvelope
    payload: EventPayload


class AllScope(Model):
    """``EventStreamScope`` ``all``: every event (wire: ``"all"``)."""

    TAG: ClassVar[str] = "all"
    _tag_key = None


class RunScope(Model):
    """``EventStreamScope`` ``run``: the events of one run (wire: ``{"run":"<run id>"}``)."""

    TAG: ClassVar[str] = "run"
    _tag_key = None
    _newtype = True
    run_id: RunId


class AgentScope(Model):
    """``EventStreamScope`` ``agent``: the events of one agent (wire: ``{"agent":"<agent id>"}``)."""

    TAG: ClassVar[str] = "agent"
    _tag_key = None
    _newtype = True
    agent_id: AgentId


class FilterScope(Model):
    """``EventStreamScope`` ``filter``: the events a compiled filter matches (its id and fingerprint)."""

    TAG: ClassVar[str] = "filter"
    _tag_key = None
    filter_id: str
    filter_fingerprint: str


EventStreamScope = Union[AllScope, RunScope, AgentScope, FilterScope]
"""Which stream an ``EventCursor`` belongs to (wire: serde's external tagging, ``"all"`` or
``{"filter":{...}}``); a cursor resumes only the stream of its scope."""

#: The scope of a frame as published (``EventStreamScope::All``).
ALL_EVENTS = AllScope()


class EventCursor(Model):
    """A position in an event stream: the scope, the bus's ``event_seq``, the event and its journal cursor."""

    scope: EventStreamScope
    event_seq: U64Int
    event_id: EntityId
    journal_cursor: JournalCursor | None = None


class ArchiveCursor(Model):
    """A position in an event archive."""

    archive_id: EntityId
    position: str
    event_id: EntityId | None = None
    watermark: str | None = None


class EventOverflowNotice(Model):
    """What a bounded subscription dropped before the frame that carries it."""

    policy: SubscriberOverflowPolicy
    dropped_count: U64Int
    gap_start: EventCursor | None = None
    gap_end: EventCursor
    repair_from: JournalCursor | None = None
    terminal_preserved: bool
    reason: EventOverflowReason


class EventFrame(Model):
    """An event as a bus delivers it: the event, its cursor, and an overflow notice after drops."""

    event: AgentEvent
    cursor: EventCursor
    archive_cursor: ArchiveCursor | None = None
    overflow: EventOverflowNotice | None = None


class EventIndexProjection(Model):
    """The envelope fields a journal record repeats so that it can be indexed like an event."""

    run_id: RunId
    session_id: SessionId | None = None
    agent_id: AgentId
    turn_id: TurnId | None = None
    event_family: str
    event_kind: str
    source: SourceRef
    destination: DestinationRef | None = None
    subject_ref: EntityRef
    related_refs: tuple[EntityRef, ...] = ()
    correlation_keys: tuple[CorrelationEntry, ...] = ()
    tags: tuple[str, ...] = ()
    privacy_class: PrivacyClass
    delivery_semantics: str


class EffectIntent(Model):
    """A side effect announced before it happens (an accepted message: its delivery)."""

    effect_id: EntityId
    kind: EffectKind
    subject_ref: EntityRef
    source: SourceRef
    destination: DestinationRef | None = None
    policy_refs: tuple[PolicyRef, ...] = ()
    idempotency_key: IdempotencyKey | None = None
    dedupe_key: EntityId | None = None
    content_refs: tuple[ContentRef, ...] = ()
    redacted_summary: str


class EffectResult(Model):
    """How an announced side effect ended."""

    effect_id: EntityId
    terminal_status: EffectTerminalStatus
    external_operation_id: str | None = None
    reconciliation_ref: str | None = None
    error_ref: str | None = None
    content_refs: tuple[ContentRef, ...] = ()
    redacted_summary: str


class AgentPoolRecord(Model):
    """Journal payload ``agent_pool``: a pool lifecycle transition and the pool as it stood."""

    TYPE: ClassVar[str] = "agent_pool"
    pool_id: AgentPoolId
    member_run_ids: tuple[RunId, ...] = ()
    topics: tuple[TopicId, ...] = ()
    policy_refs: tuple[PolicyRef, ...] = ()
    lifecycle_status: AgentPoolLifecycleStatus


class RunMessageRecord(Model):
    """Journal payload ``run_message``: a message status transition, with its effect intent or result."""

    TYPE: ClassVar[str] = "run_message"
    message_id: MessageId
    source_run_id: RunId
    address_target: RunAddressTarget
    content_ref: ContentRef
    correlation: EventCorrelation = EventCorrelation()
    reply_to: MessageId | None = None
    delivery_status: MessageStatus
    delivered_to: tuple[RunId, ...] = ()
    policy_refs: tuple[PolicyRef, ...] = ()
    idempotency_key: IdempotencyKey
    effect_intent: EffectIntent | None = None
    effect_result: EffectResult | None = None


class WakeRecord(Model):
    """Journal payload ``wake``: a wake status transition (``matched_event_id`` on a trigger)."""

    TYPE: ClassVar[str] = "wake"
    condition_id: WakeConditionId
    run_id: RunId
    event_filter_fingerprint: str
    timeout_millis: U64Int | None = None
    resume_policy: ResumeInputPolicy
    trigger_status: WakeRegistrationStatus
    policy_refs: tuple[PolicyRef, ...] = ()
    idempotency_key: IdempotencyKey
    matched_event_id: EntityId | None = None


JournalRecordPayload = Union[AgentPoolRecord, RunMessageRecord, WakeRecord]
"""The payloads the coordinator journals (wire: internally tagged by ``type``); Rust's enum has
more variants, which other SDK features write."""


class JournalRecord(Model):
    """One record of a run journal: who, what, where, its event-index projection and payload."""

    journal_schema_version: U32Int
    journal_seq: U64Int
    record_id: str
    record_kind: JournalRecordKind
    run_id: RunId
    session_id: SessionId | None = None
    agent_id: AgentId
    turn_id: TurnId | None = None
    attempt_id: EntityId | None = None
    subject_ref: EntityRef
    related_refs: tuple[EntityRef, ...] = ()
    causal_refs: tuple[str, ...] = ()
    source: SourceRef
    destination: DestinationRef | None = None
    correlation_keys: tuple[CorrelationEntry, ...] = ()
    tags: tuple[str, ...] = ()
    delivery_semantics: str
    event_index: EventIndexProjection
    timestamp_millis: U64Int
    runtime_package_fingerprint: str
    privacy: PrivacyClass
    content_refs: tuple[ContentRef, ...] = ()
    redaction_policy_id: str
    idempotency_key: IdempotencyKey | None = None
    dedupe_key: EntityId | None = None
    checkpoint_ref: str | None = None
    payload: JournalRecordPayload
