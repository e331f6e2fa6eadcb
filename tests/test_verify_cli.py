"""``fastpool verify DB`` as a real command (SPEC §7): clean files pass, every bad record is listed
by pool and sequence with exit status 1, the file is never changed, and unusable input gives
a one-line error without a traceback.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import apsw
import pytest
from helpers import FIXTURES

import fastpool
from fastpool import AgentPoolMember, AgentPoolStoreConfig, SqliteAgentPoolStore, wire
from fastpool.model import PoolCreated, PoolOpened
from fastpool.sqlite import SCHEMA_VERSION

FLOW = FIXTURES / "db" / "flow.sqlite"
BULK = "pool.bulk é"


def run_verify(*args: str) -> subprocess.CompletedProcess[str]:
    return run_fastpool("verify", *args)


def run_fastpool(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(fastpool.__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
    env["PYTHONIOENCODING"] = "utf-8"
    return subprocess.run(
        [sys.executable, "-m", "fastpool", *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=env,
        timeout=60,
        check=False,
    )


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def companions(path: Path) -> set[str]:
    return {p.name for p in path.parent.iterdir() if p.name != path.name}


@pytest.fixture
def flow(tmp_path: Path) -> Path:
    if not FLOW.is_file():
        pytest.fail(f"fixture {FLOW} not found (set FASTPOOL_FIXTURES)")
    path = tmp_path / "flow.sqlite"
    shutil.copyfile(FLOW, path)
    os.chmod(path, 0o644)
    return path


def damage(path: Path, pool_id: str, sequence: int, kind: str, payload: object) -> None:
    db = apsw.Connection(str(path))
    try:
        db.execute(
            "UPDATE agent_pool_records SET kind = ?, payload_json = ? WHERE pool_id = ? AND seq = ?",
            (kind, payload, pool_id, sequence),
        )
        assert db.changes() == 1
    finally:
        db.close()


def test_clean_file(flow: Path) -> None:
    before = digest(flow)
    done = run_verify(str(flow))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == ["2 pools, 209 records: clean"]
    assert "Traceback" not in done.stderr
    assert digest(flow) == before
    assert companions(flow) == set(), "verify left -wal/-shm/-journal files beside a rollback-journal file"


def test_three_damaged_rows_are_each_listed(flow: Path) -> None:
    damage(flow, "pool.flow", 3, "member_joined", '{"type":"member_joined","member":')  # malformed JSON
    damage(flow, BULK, 17, "run_message", '{"type":"run_message_v2"}')  # unknown type
    damage(flow, BULK, 150, "pool_created", '{"type":"member_left","member":{"run_id":"","agent_id":"a"}}')
    before = digest(flow)

    done = run_verify(str(flow))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == "2 pools, 209 records: 3 problems", lines
    problems = lines[:-1]
    assert len(problems) == 3, problems
    named = [
        (m.group(1), int(m.group(2))) for m in (re.match(r"pool '(.*)' record (\d+): ", line) for line in problems) if m
    ]
    assert sorted(named) == sorted([("pool.flow", 3), (BULK, 17), (BULK, 150)]), problems
    by_place = dict(zip(named, problems, strict=True))
    assert "JSON" in by_place[("pool.flow", 3)]
    assert "run_message_v2" in by_place[(BULK, 17)]
    assert "identifier is empty" in by_place[(BULK, 150)]
    assert digest(flow) == before, "verify changed the file"
    assert companions(flow) == set()


def test_blob_payload_and_conflicting_open_are_problems(flow: Path) -> None:
    text = wire.encode(PoolOpened(config=AgentPoolStoreConfig(policy_refs=())))
    db = apsw.Connection(str(flow))
    [(kind, payload)] = db.execute(
        "SELECT kind, payload_json FROM agent_pool_records WHERE pool_id = 'pool.flow' AND seq = 2"
    )
    db.close()
    damage(flow, "pool.flow", 2, kind, payload.encode("utf-8"))  # the same row, its JSON stored as a BLOB
    config = wire.decode(PoolOpened, text).config.replace(
        message_policy=AgentPoolStoreConfig().message_policy.replace(include_sender_in_pool_broadcast=True)
    )
    damage(flow, BULK, 5, "pool_opened", wire.encode(PoolOpened(config=config)))
    done = run_verify(str(flow))
    assert done.returncode == 1
    problems = done.stdout.splitlines()[:-1]
    assert [line.split(":")[0] for line in problems] == ["pool 'pool.bulk é' record 5", "pool 'pool.flow' record 2"]
    assert "conflicting pool open records" in problems[0]


def test_damaged_wal_mode_file_written_by_fastpool(tmp_path: Path) -> None:
    """A fastpool (WAL) file: problems found, the main file's bytes unchanged."""
    path = tmp_path / "pools.sqlite"
    with SqliteAgentPoolStore(path) as store:
        for pool in ("pool.a", "pool.b"):
            store.open_pool(pool, AgentPoolStoreConfig())
            for n in range(10):
                store.join_member(pool, AgentPoolMember(run_id=f"run.{n}", agent_id="agent"))
    damage(path, "pool.b", 7, "member_joined", "{}")
    before = digest(path)
    done = run_verify(str(path))
    assert done.returncode == 1
    assert done.stdout.splitlines()[-1] == "2 pools, 22 records: 1 problem"
    assert done.stdout.startswith("pool 'pool.b' record 7: ")
    assert digest(path) == before


def test_sequence_gap_is_a_problem(flow: Path) -> None:
    db = apsw.Connection(str(flow))
    db.execute("DELETE FROM agent_pool_records WHERE pool_id = 'pool.flow' AND seq = 4")
    db.close()
    done = run_verify(str(flow))
    assert done.returncode == 1
    assert any(line.startswith("pool 'pool.flow' record 5: ") and "gap" in line for line in done.stdout.splitlines())


def test_pool_never_opened_is_a_finding(flow: Path) -> None:
    """Records of a pool nobody opened (the Rust store appends pool_created to any pool) are
    listed; a pool whose pool_opened comes after such records is clean."""
    rows = [
        ("pool.late", 1, PoolCreated()),
        ("pool.late", 2, PoolOpened(config=AgentPoolStoreConfig())),
        ("pool.never", 1, PoolCreated()),
        ("pool.never", 2, PoolCreated()),
    ]
    db = apsw.Connection(str(flow))
    with db:
        for pool_id, sequence, payload in rows:
            db.execute(
                "INSERT INTO agent_pool_records VALUES (?, ?, ?, ?)",
                (pool_id, sequence, payload.TYPE, wire.encode(payload)),
            )
    db.close()
    done = run_verify(str(flow))
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.splitlines() == [
        "pool 'pool.never': never opened: 2 records and no pool_opened among them",
        "4 pools, 213 records: 1 problem",
    ]


def test_newer_schema_version_is_refused_as_the_other_commands_refuse_it(tmp_path: Path) -> None:
    path = tmp_path / "pools.sqlite"
    with SqliteAgentPoolStore(path) as store:
        store.open_pool("pool.a", AgentPoolStoreConfig())
    db = apsw.Connection(str(path))
    db.execute("UPDATE fastpool_meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    assert db.changes() == 1
    db.close()
    before = digest(path)
    inspect = run_fastpool("inspect", str(path))
    assert inspect.returncode == 1 and "upgrade fastpool" in inspect.stderr, inspect.stderr
    done = run_verify(str(path))
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == inspect.stderr.replace("fastpool inspect:", "fastpool verify:")
    assert digest(path) == before


@pytest.mark.parametrize(
    "content",
    [b"this is a text file, not a database\n" * 50, bytes(range(256)) * 40],
    ids=["text", "binary"],
)
def test_not_a_database(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "not-a-db.sqlite"
    path.write_bytes(content)
    done = run_verify(str(path))
    assert done.returncode != 0
    assert "Traceback" not in done.stderr + done.stdout
    error_lines = [line for line in (done.stdout + done.stderr).splitlines() if "not a database" in line]
    assert len(error_lines) == 1, done.stdout + done.stderr
    assert path.read_bytes() == content


def test_truncated_database(tmp_path: Path) -> None:
    path = tmp_path / "truncated.sqlite"
    path.write_bytes(FLOW.read_bytes()[:8192])
    done = run_verify(str(path))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr + done.stdout
    assert re.search(r"malformed|corrupt|integrity", done.stdout + done.stderr), done.stdout + done.stderr


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "absent.sqlite"
    done = run_verify(str(path))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and str(path) in lines[0], done.stderr
    assert lines[0].startswith("fastpool verify: error: ")
    assert not path.parent.exists(), "verify must not create anything"
