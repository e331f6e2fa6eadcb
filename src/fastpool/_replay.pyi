"""Types of ``fastpool._replay``, the compiled twin of ``_replay_py`` (same names and signatures)."""

from collections.abc import Callable
from typing import Any, TypeVar

from ._pool_state_c import PoolState as PoolState
from .errors import AgentError

__all__ = [
    "make",
    "to_plain",
    "dumps",
    "from_plain",
    "parse_json",
    "decode_text",
    "decode_payload",
    "replay_rows",
    "decode_row",
    "corrupt_record",
    "PoolState",
]

_T = TypeVar("_T")

def make(cls: type[_T], values: tuple[Any, ...]) -> _T: ...
def to_plain(obj: Any) -> Any: ...
def dumps(obj: Any) -> str: ...
def from_plain(target: Any, value: Any, path: str) -> Any: ...
def parse_json(text: str | bytes, path: str) -> Any: ...
def decode_text(target: Any, text: str | bytes, path: str) -> Any: ...
def decode_payload(text: str | bytes) -> Any: ...
def replay_rows(state: PoolState, rows: Any, seen: Callable[[Any, int], object] | None = None) -> None: ...
def decode_row(kind: str, text: str | bytes) -> Any: ...
def corrupt_record(store_name: str, pool_id: str, sequence: int, reason: str) -> AgentError: ...
