"""Fixtures for the benchmark suites: pools of N realistic records in temp files, both engines.

Run with ``pytest benches/`` (a bare ``pytest`` only collects ``tests/``). Options:

* ``--quick`` (or ``FASTPOOL_BENCH_QUICK=1``): pool sizes 0 and 10k only; a 100k-only
  benchmark (T5) then runs at 10k. A full pass adds N = 100k.
* ``--benchmark-disable`` on the command line runs every body once, as a smoke test;
  otherwise benchmarks are enabled here, overriding the ``--benchmark-disable`` that
  pyproject's ``addopts`` sets for ``tests/``.

Pools are written straight into the Rust crate's tables (``workload.write_pool``) once per
size per session, outside any timed body, and each benchmark gets its own copy of the file.
After the tables, a summary sets each measured figure against its SPEC §6 target.
"""

from __future__ import annotations

import importlib
import os
import shutil
import sqlite3
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

try:
    import fastpool
except ImportError:  # a checkout that is not installed: use its src/
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    import fastpool

from baseline_seed import SeedAgentPoolStore
from support import POOL, Pool, Templates, store_class, summary

SIZES = (0, 10_000, 100_000)
QUICK_SIZES = (0, 10_000)
ENGINES = {"compiled": "fastpool._replay", "pure": "fastpool._replay_py"}


# ---------------------------------------------------------------- collection and options


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--quick",
        action="store_true",
        default=False,
        help="fastpool benches: pool sizes 0 and 10k only (also FASTPOOL_BENCH_QUICK=1)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sizes(*n): the pool sizes a benchmark runs at (default: all)")
    # pyproject's addopts disable benchmarks for tests/; here they are the point. An explicit
    # --benchmark-disable on the command line still wins (smoke-run every body once).
    if "--benchmark-disable" not in config.invocation_params.args:
        config.option.benchmark_enable = True


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    # A file named on the command line is collected by pytest's own plugin whatever its name:
    # collecting it here too ran every benchmark twice.
    if parent.session.isinitpath(file_path):
        return None
    if file_path.suffix == ".py" and file_path.name.startswith("bench_"):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


def _sizes(config: pytest.Config) -> tuple[int, ...]:
    quick = config.getoption("--quick") or bool(os.environ.get("FASTPOOL_BENCH_QUICK", ""))
    return QUICK_SIZES if quick else SIZES


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "pool_size" not in metafunc.fixturenames:
        return
    allowed = _sizes(metafunc.config)
    marker = metafunc.definition.get_closest_marker("sizes")
    sizes = [n for n in marker.args if n in allowed] if marker else list(allowed)
    if marker and not sizes:
        sizes = [max(allowed)]  # a 100k-only benchmark still measures something in --quick mode
    metafunc.parametrize("pool_size", sizes, ids=[f"N={n}" for n in sizes], scope="session")


def pytest_report_header(config: pytest.Config) -> list[str]:
    import apsw

    kind = "compiled" if fastpool.USE_EXTENSIONS else "pure Python"
    return [
        f"fastpool {fastpool.__version__}: store-level benches use the {kind} engine "
        f"({fastpool._compat.engine.__name__}); pool sizes {_sizes(config)}",
        f"apsw {apsw.apswversion()}, SQLite {apsw.sqlite_lib_version()}; "
        f"baseline: stdlib sqlite3 (SQLite {sqlite3.sqlite_version}); {os.cpu_count()} CPUs",
    ]


# ---------------------------------------------------------------- pools


@pytest.fixture(scope="session")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Templates:
    """Where the filled pool files of this session are written, once per size."""
    return Templates(tmp_path_factory.mktemp("pools"))


@pytest.fixture
def pool(templates: Templates, pool_size: int, tmp_path: Path) -> Iterator[Pool]:
    """A private copy of the N-record pool file (N = ``pool_size``; N = 0 is a just-opened pool)."""
    source, info = templates.get(pool_size)
    path = tmp_path / "pool.sqlite"
    shutil.copyfile(source, path)
    yield Pool(path, info, pool_size)
    for suffix in ("", "-wal", "-shm"):  # 100 MB per 100k pool: do not keep them around
        Path(f"{path}{suffix}").unlink(missing_ok=True)


@pytest.fixture(scope="session")
def pool_rows(templates: Templates) -> Callable[[int], list[tuple[int, str, str]]]:
    """``(seq, kind, payload_json)`` rows of the N-record pool, in memory, for engine-level benches."""
    cache: dict[int, list[tuple[int, str, str]]] = {}

    def rows(size: int) -> list[tuple[int, str, str]]:
        if size not in cache:
            path, _ = templates.get(size)
            with sqlite3.connect(path) as connection:
                cache[size] = connection.execute(
                    "SELECT seq, kind, payload_json FROM agent_pool_records WHERE pool_id = ? ORDER BY seq", (POOL,)
                ).fetchall()
            connection.close()
        return cache[size]

    return rows


# ---------------------------------------------------------------- stores and engines


@pytest.fixture
def store(pool: Pool) -> Iterator[Any]:
    """A fastpool store on the pool file, synchronous=normal, with the pool already replayed (warm)."""
    s = store_class()(pool.path, synchronous="normal")
    s.snapshot(pool.pool_id)
    yield s
    s.close()


@pytest.fixture
def seed_store(pool: Pool) -> Iterator[SeedAgentPoolStore]:
    """The seed-algorithm baseline on the pool file (nothing to warm: it replays on every call)."""
    s = SeedAgentPoolStore(str(pool.path))
    yield s
    s.close()


@pytest.fixture(params=list(ENGINES), scope="session")
def engine(request: pytest.FixtureRequest) -> ModuleType:
    """An engine module: ``fastpool._replay`` (compiled) or ``fastpool._replay_py`` (pure twin)."""
    try:
        return importlib.import_module(ENGINES[request.param])
    except ImportError as error:
        pytest.skip(f"{ENGINES[request.param]} is not built ({error}): pip install -e . builds it")


# ---------------------------------------------------------------- the targets, side by side


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    session = getattr(config, "_benchmarksession", None)
    lines = summary(session.benchmarks) if session is not None and not session.disabled else []
    if lines:
        terminalreporter.section("fastpool targets (medians; SPEC §6)")
        for line in lines:
            terminalreporter.write_line(line)
