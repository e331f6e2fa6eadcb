"""Types of ``fastpool._replay``, the compiled twin of ``_replay_py`` (same names and signatures)."""

from typing import Any, TypeVar

from typing_extensions import disjoint_base

from .errors import AgentError
from .model import (
    AgentPoolMember,
    AgentPoolSnapshot,
    AgentPoolStoreConfig,
    AgentPoolStoredMessage,
    AgentPoolStoredWake,
    MessageReceipt,
    WakeRegistration,
)

__all__ = [
    "make",
    "to_plain",
    "dumps",
    "from_plain",
    "parse_json",
    "decode_payload",
    "replay_rows",
    "decode_row",
    "corrupt_record",
    "PoolState",
    "CONFLICTING_OPEN",
]

_T = TypeVar("_T")

CONFLICTING_OPEN: str

def make(cls: type[_T], values: tuple[Any, ...]) -> _T: ...
def to_plain(obj: Any) -> Any: ...
def dumps(obj: Any) -> str: ...
def from_plain(target: Any, value: Any, path: str) -> Any: ...
def parse_json(text: str | bytes, path: str) -> Any: ...
def decode_payload(text: str | bytes) -> Any: ...
def replay_rows(state: PoolState, rows: Any) -> None: ...
def decode_row(pool_id: str, sequence: int, kind: str, text: str | bytes) -> Any: ...
def corrupt_record(pool_id: str, sequence: int, reason: str) -> AgentError: ...

@disjoint_base
class PoolState:
    pool_id: str
    config: AgentPoolStoreConfig | None
    created: bool
    cursor: int
    members: dict[str, AgentPoolMember]
    messages: dict[str, AgentPoolStoredMessage]
    message_dedupe: dict[str, MessageReceipt]
    wakes: dict[str, AgentPoolStoredWake]
    wake_dedupe: dict[str, WakeRegistration]
    def __init__(self, pool_id: str) -> None: ...
    def apply(self, payload: Any, sequence: int) -> None: ...
    def snapshot(self) -> AgentPoolSnapshot | None: ...
    def sorted_members(self) -> tuple[AgentPoolMember, ...]: ...
    def sorted_topics(self) -> tuple[str, ...]: ...
    def topic_members(self, topic: str) -> tuple[AgentPoolMember, ...]: ...
    # Cython's pickle support (the twin's instances pickle too).
    def __reduce_cython__(self) -> Any: ...
    def __setstate_cython__(self, __pyx_state: Any) -> None: ...
