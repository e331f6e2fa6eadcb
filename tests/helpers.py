"""Small shared helpers for the test suite: where the golden fixtures live and how to read them."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

#: The golden fixtures carried in the repository (``tests/fixtures``, a byte-identical copy of
#: the project's ``shared/fixtures``; ``.ci/run`` checks the two still agree). ``FASTPOOL_FIXTURES``
#: overrides it.
FIXTURES = Path(os.environ.get("FASTPOOL_FIXTURES") or Path(__file__).resolve().parent / "fixtures")

#: The same rule as ``fastpool._env.extensions_disabled`` (any non-empty value).
NO_EXTENSIONS = bool(os.environ.get("FASTPOOL_NO_EXTENSIONS", ""))

U64_MAX = 2**64 - 1
U32_MAX = 2**32 - 1


def load_jsonl(name: str) -> list[dict[str, Any]]:
    """The rows of ``FIXTURES/wire/<name>``; a missing fixture is an error, never an empty suite."""
    path = FIXTURES / "wire" / name
    if not path.is_file():
        raise FileNotFoundError(f"golden fixture {path} not found (carried in tests/fixtures)")
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def engine_encode(engine: Any, obj: Any) -> str:
    """``wire.encode`` done with one given engine instead of the loaded one."""
    return orjson.dumps(engine.to_plain(obj)).decode("utf-8")


def engine_decode(engine: Any, cls: Any, text: str | bytes) -> Any:
    """``wire.decode`` of a model class done with one given engine (path rooted at the class name)."""
    return engine.from_plain(cls, orjson.loads(text), cls.__name__)


#: The ``cli`` fixture's function: ``fastpool ARGS…`` in this process, (exit status, stdout, stderr).
Run = Callable[..., tuple[int, str, str]]


def child_exit_code(pid: int, seconds: float = 20) -> int | None:
    """A forked child's exit code; ``None`` if it had not ended within ``seconds`` (it is then killed)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None
