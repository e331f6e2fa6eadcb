"""Shared fixtures: the two replay engines, the golden-fixture location, the report header.

Every engine test runs twice, ``[c]`` (the compiled ``fastpool._replay``) and ``[py]`` (the
``fastpool._replay_py`` twin). A missing extension makes ``[c]`` fail, never skip, unless
``FASTPOOL_NO_EXTENSIONS`` is set: CI runs the suite once compiled and once with
``FASTPOOL_NO_EXTENSIONS=1``.

The PostgreSQL tests share one throwaway cluster per session (``pg_server``, see
``pg_server.py``); each test works in a schema of its own (``pg_schema``). Without server
binaries or psycopg they skip with the reason, except in CI (``CI`` set), where they fail.
"""

from __future__ import annotations

import importlib
import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from helpers import FIXTURES, NO_EXTENSIONS, Run
from pg_server import PostgresServer, find_bindir
from store_helpers import PgTarget

from fastpool.cli import main

__all__ = ["FIXTURES"]

ENGINE_MODULES = {"c": "fastpool._replay", "py": "fastpool._replay_py"}


def pytest_report_header(config: pytest.Config) -> list[str]:
    import apsw

    import fastpool

    loaded = fastpool._compat.engine.__name__
    kind = "compiled" if fastpool.USE_EXTENSIONS else "pure Python"
    flag = os.environ.get("FASTPOOL_NO_EXTENSIONS", "")
    return [
        f"fastpool {fastpool.__version__}: {kind} engine ({loaded}), FASTPOOL_NO_EXTENSIONS={flag!r}",
        f"apsw {apsw.apswversion()}, SQLite {apsw.sqlite_lib_version()}",
        f"fixtures: {FIXTURES}",
    ]


def load_engine(name: str) -> ModuleType:
    """The engine module ``name`` (``c`` or ``py``); ``[c]`` fails loudly when it is not built."""
    if name == "c" and NO_EXTENSIONS:
        pytest.skip("FASTPOOL_NO_EXTENSIONS is set: the compiled engine is not under test")
    try:
        return importlib.import_module(ENGINE_MODULES[name])
    except ImportError as error:
        pytest.fail(
            f"cannot import {ENGINE_MODULES[name]} ({error}); build it (pip install -e . or "
            "python setup.py build_ext --inplace) or run with FASTPOOL_NO_EXTENSIONS=1",
            pytrace=False,
        )


@pytest.fixture(scope="session", params=["c", "py"])
def engine(request: pytest.FixtureRequest) -> Any:
    """The replay engine module under test (``fastpool._replay`` or ``fastpool._replay_py``)."""
    return load_engine(request.param)


@pytest.fixture(scope="session")
def c_engine() -> Any:
    """The compiled engine, for tests that compare both engines in one test."""
    return load_engine("c")


@pytest.fixture(scope="session")
def py_engine() -> Any:
    """The pure-Python twin."""
    return load_engine("py")


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"CI is set, so the PostgreSQL tests must run: {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL TESTS NOT RUN: {reason}")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """A PostgreSQL cluster started for this test session (stopped and removed at its end)."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _unavailable("psycopg is not installed (pip install -e '.[postgres]')")
    bindir = find_bindir()
    if bindir is None:
        _unavailable("no PostgreSQL server binaries (apt-get install postgresql)")
    assert bindir is not None
    server = PostgresServer(bindir)
    try:
        yield server.start()
    finally:
        server.destroy()


_schemas = itertools.count(1)


@pytest.fixture
def pg_schema(pg_server: PostgresServer) -> str:
    """A schema name no other test uses (the store creates it), so tests are independent."""
    return f"t{os.getpid()}_{next(_schemas)}"


@pytest.fixture
def pg(pg_server: PostgresServer, pg_schema: str) -> Iterator[PgTarget]:
    target = PgTarget(pg_server.conninfo, pg_schema)
    yield target
    target.close()


@pytest.fixture(params=["sqlite", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, str]]:
    """Where a store, runtime or surface opens, as ``(location, options)``: a file, or a
    PostgreSQL server and a schema of this test."""
    if request.param == "sqlite":
        return str(tmp_path / "host.sqlite"), {}
    server = request.getfixturevalue("pg_server")
    return server.conninfo, {"schema": request.getfixturevalue("pg_schema")}


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Run:
    """``fastpool ARGS…`` in this process: (exit status, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run
