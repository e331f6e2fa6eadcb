"""Guard tests: which replay engine ``import fastpool`` picks, and the switch that changes it.

The default import must pick the compiled engine; that test fails (never skips) when the
extension is not built, unless ``FASTPOOL_NO_EXTENSIONS`` is set for this test run.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import NO_EXTENSIONS

import fastpool
from fastpool import _replay_py
from fastpool._env import extensions_disabled, extensions_required

SRC = str(Path(fastpool.__file__).resolve().parents[1])
CONFIG = fastpool.AgentPoolStoreConfig()
PROBE = (
    "import json, sys, importlib.machinery as m, fastpool, fastpool._compat as c, fastpool.wire as w; "
    "compiled = sorted(n for n, mod in sys.modules.items() if n.startswith('fastpool') "
    "and getattr(mod, '__file__', '').endswith(tuple(m.EXTENSION_SUFFIXES))); "
    "print(json.dumps([fastpool.USE_EXTENSIONS, c.engine.__name__, w.engine.__name__, "
    "c.engine.PoolState.__module__, compiled]))"
)
COMPILED = ["fastpool._pool_state_c", "fastpool._replay"]


def run_child(**env_changes: str | None) -> tuple[bool, str, str]:
    """Import fastpool in a fresh interpreter; returns (USE_EXTENSIONS, engine, wire's engine).

    It also checks that the engine is whole: the compiled one applies records with the
    compiled pool state, and the pure one loads no compiled module at all."""
    env = dict(os.environ)
    for name in ("FASTPOOL_NO_EXTENSIONS", "FASTPOOL_REQUIRE_EXTENSIONS"):
        env.pop(name, None)
    for name, value in env_changes.items():
        if value is not None:
            env[name] = value
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [SRC, env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    use, name, wire_name, state_module, compiled = json.loads(done.stdout)
    if use:
        assert (state_module, compiled) == ("fastpool._pool_state_c", COMPILED)
    else:
        assert (state_module, compiled) == ("fastpool._pool_state", []), "the pure engine loaded compiled code"
    return use, name, wire_name


requires_compiled = pytest.mark.skipif(
    NO_EXTENSIONS, reason="FASTPOOL_NO_EXTENSIONS is set: the compiled engine is not under test"
)


@requires_compiled
def test_compiled_engine_preferred_by_default() -> None:
    use, name, wire_name = run_child()
    assert (use, name, wire_name) == (True, "fastpool._replay", "fastpool._replay"), (
        "import fastpool fell back to the pure-Python twin: build the extension (pip install -e .) "
        "or run the suite with FASTPOOL_NO_EXTENSIONS=1"
    )


@requires_compiled
def test_empty_variable_keeps_the_compiled_engine() -> None:
    assert run_child(FASTPOOL_NO_EXTENSIONS="") == (True, "fastpool._replay", "fastpool._replay")


@requires_compiled
def test_this_process_uses_the_compiled_engine() -> None:
    assert fastpool.USE_EXTENSIONS is True
    assert fastpool._compat.engine.__name__ == "fastpool._replay"


@pytest.mark.parametrize("value", ["1", "0", "yes"])
def test_variable_selects_the_pure_twin(value: str) -> None:
    assert run_child(FASTPOOL_NO_EXTENSIONS=value) == (False, "fastpool._replay_py", "fastpool._replay_py")


def test_require_and_disable_together_give_the_twin() -> None:
    # disabling wins: FASTPOOL_REQUIRE_EXTENSIONS only turns a failed import into an error
    assert run_child(FASTPOOL_NO_EXTENSIONS="1", FASTPOOL_REQUIRE_EXTENSIONS="1")[1] == "fastpool._replay_py"


@pytest.mark.skipif(not NO_EXTENSIONS, reason="checks the pure-mode run of the suite")
def test_this_process_uses_the_pure_twin() -> None:
    assert fastpool.USE_EXTENSIONS is False
    assert fastpool._compat.engine is _replay_py


def test_use_extensions_tells_the_loaded_engine() -> None:
    assert fastpool.USE_EXTENSIONS == (fastpool._compat.engine.__name__ == "fastpool._replay")
    assert fastpool.wire.engine is fastpool._compat.engine


@pytest.mark.parametrize(
    "environ, expected",
    [
        ({}, False),
        ({"FASTPOOL_NO_EXTENSIONS": ""}, False),
        ({"FASTPOOL_NO_EXTENSIONS": "0"}, True),
        ({"FASTPOOL_NO_EXTENSIONS": "1"}, True),
        ({"FASTPOOL_NO_EXTENSIONS": "false"}, True),
        ({"FASTPOOL_NO_EXTENSIONS": " "}, True),
        ({"OTHER": "1"}, False),
    ],
)
def test_extensions_disabled_rule(environ: dict[str, str], expected: bool) -> None:
    assert extensions_disabled(environ) is expected


def test_extensions_required_rule() -> None:
    assert extensions_required({}) is False
    assert extensions_required({"FASTPOOL_REQUIRE_EXTENSIONS": ""}) is False
    assert extensions_required({"FASTPOOL_REQUIRE_EXTENSIONS": "0"}) is True


def test_engine_has_the_twins_public_names(engine) -> None:
    """The compiled engine and the twin expose the same public names (STYLE: a named implementation pair)."""
    for name in _replay_py.__all__:
        assert hasattr(engine, name), f"{engine.__name__} lacks {name}"


def test_both_engines_share_the_model_and_errors(engine) -> None:
    with pytest.raises(fastpool.InvalidInput):
        engine.decode_payload("{}")
    payload = engine.decode_payload('{"type":"pool_created"}')
    assert type(payload) is fastpool.PoolCreated


@requires_compiled
def test_the_compiled_pool_state_builds_with_the_compiled_make(c_engine) -> None:
    """Its snapshots come from C, as every object the compiled engine makes: left untracked by
    the GC (a snapshot built by the pure ``_schema.make`` is tracked)."""
    state = c_engine.PoolState("pool.p")
    c_engine.replay_rows(state, [(1, "pool_opened", fastpool.wire.encode(fastpool.PoolOpened(config=CONFIG)))])
    snapshot = state.snapshot()
    assert snapshot.cursor.sequence == 1
    assert not gc.is_tracked(snapshot) and not gc.is_tracked(snapshot.cursor)
