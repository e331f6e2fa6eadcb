"""Every SQL text of the SQLite store, its tools and its benchmarks, in one place.

The two tables are the Rust crate's , byte for byte in meaning; ``fastpool_meta``
is fastpool's own format marker, and the ``fastpool_point_*`` tables are the point-read index
(``_point_reads``).
"""

from __future__ import annotations

#: The file format this fastpool writes; a file marked with a newer one is refused.
SCHEMA_VERSION = 1

RECORDS_TABLE = """CREATE TABLE IF NOT EXISTS agent_pool_records (
        pool_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        kind TEXT NOT NULL,
        payload_json TEXT NOT NULL,
        PRIMARY KEY (pool_id, seq)
    )"""
EVENT_SEQ_TABLE = """CREATE TABLE IF NOT EXISTS agent_pool_event_seq (
        pool_id TEXT PRIMARY KEY,
        seq INTEGER NOT NULL
    )"""
META_TABLE = "CREATE TABLE IF NOT EXISTS fastpool_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
#: The Rust crate's tables: what a file needs to be an agent pool store.
RUST_TABLES = (RECORDS_TABLE, EVENT_SEQ_TABLE)
# payload_json is TEXT; a BLOB in it (which SQLite allows) is read as NULL, so that the
# engines refuse it as a corrupt record, as the Rust crate does, instead of decoding bytes.
_PAYLOAD = "CASE WHEN typeof(payload_json) = 'text' THEN payload_json END"
_PAYLOAD_R = "CASE WHEN typeof(r.payload_json) = 'text' THEN r.payload_json END"

# The point-read index: per pool, the latest record (at or before the pool's mark) under each
# message idempotency key (kind 0), wake idempotency key (1) and condition id (2), and every
# pool_opened record (3, keyed by its sequence); the mark is the last sequence it covers.
POINT_INDEX_VERSION = "1"
POINT_KEYS_TABLE = """CREATE TABLE IF NOT EXISTS fastpool_point_keys (
        pool_id TEXT NOT NULL,
        kind INTEGER NOT NULL,
        key TEXT NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (pool_id, kind, key)
    ) WITHOUT ROWID"""
POINT_MARKS_TABLE = """CREATE TABLE IF NOT EXISTS fastpool_point_marks (
        pool_id TEXT PRIMARY KEY,
        seq INTEGER NOT NULL
    ) WITHOUT ROWID"""
POINT_TABLES = (POINT_KEYS_TABLE, POINT_MARKS_TABLE)
# A missing or half-missing index starts empty: both tables anew, so no mark outlives its keys.
START_POINT_INDEX = (
    "DROP TABLE IF EXISTS fastpool_point_keys",
    "DROP TABLE IF EXISTS fastpool_point_marks",
    *POINT_TABLES,
)
MARK_POINT_INDEX = "INSERT OR REPLACE INTO fastpool_meta (key, value) VALUES ('point_index', ?)"
POINT_INDEX_OF_FILE = "SELECT value FROM fastpool_meta WHERE key = 'point_index'"
POINT_MARK = "SELECT seq FROM fastpool_point_marks WHERE pool_id = ?"
SET_POINT_MARK = "INSERT OR REPLACE INTO fastpool_point_marks (pool_id, seq) VALUES (?, ?)"
PUT_POINT_KEY = "INSERT OR REPLACE INTO fastpool_point_keys (pool_id, kind, key, seq) VALUES (?, ?, ?, ?)"
# Index rows (?2, ?3] of pool ?1 from their JSON (records other writers appended): text that is
# not valid JSON, or a key that is not text, is left out (reading that record fails as corrupt).
_POINT_KEY_PARTS = (
    ("0", "run_message", "json_extract(payload_json, '$.stored.message.idempotency_key')"),
    ("1", "wake", "json_extract(payload_json, '$.stored.condition.idempotency_key')"),
    ("2", "wake", "json_extract(payload_json, '$.stored.condition.condition_id')"),
    ("3", "pool_opened", "CAST(seq AS TEXT)"),
)
FILL_POINT_KEYS = (
    "INSERT OR REPLACE INTO fastpool_point_keys (pool_id, kind, key, seq) SELECT ?1, kind, key, seq FROM ("
    + " UNION ALL ".join(
        f"SELECT {kind} AS kind, {key} AS key, seq FROM agent_pool_records WHERE pool_id = ?1 AND seq > ?2 "
        f"AND seq <= ?3 AND kind = '{type_}' AND typeof(payload_json) = 'text' AND json_valid(payload_json)"
        for kind, type_, key in _POINT_KEY_PARTS
    )
    + ") WHERE typeof(key) = 'text' ORDER BY seq"
)
# CROSS JOIN: the planner starts from the few index rows, not from the pool's records.
_POINT_JOIN = (
    f"SELECT r.seq, r.kind, {_PAYLOAD_R} FROM fastpool_point_keys AS k CROSS JOIN agent_pool_records AS r "
    "ON r.pool_id = k.pool_id AND r.seq = k.seq WHERE k.pool_id = ? AND k.kind = ?"
)
POINT_ROW = _POINT_JOIN + " AND k.key = ?"
POINT_OPENS = _POINT_JOIN + " AND k.seq <= ? ORDER BY k.seq"
POINT_SEQ = "SELECT seq FROM fastpool_point_keys WHERE pool_id = ? AND kind = ? AND key = ?"
# What a new point state checks the mark against: the pool's last sequence and its first record's kind.
POINT_EXTENT = (
    "SELECT MAX(seq), (SELECT kind FROM agent_pool_records WHERE pool_id = ?1 AND seq = 1) "
    "FROM agent_pool_records WHERE pool_id = ?1"
)
POINT_MARKS = "SELECT pool_id, seq FROM fastpool_point_marks ORDER BY pool_id"
POOL_LASTS = "SELECT pool_id, MAX(seq) FROM agent_pool_records GROUP BY pool_id"
POINT_KEYS_OF_POOL = "SELECT kind, key, seq FROM fastpool_point_keys WHERE pool_id = ? ORDER BY kind, key"

# delete_pool: one counter for the file, raised by every deletion, so that a store object whose
# probe saw a commit can tell that cached states may hold records no longer there (deleting
# is not an append: catching up after the cached cursor would not notice it).
DROPS_TABLE = (
    "CREATE TABLE IF NOT EXISTS fastpool_drops (id INTEGER PRIMARY KEY CHECK (id = 0), count INTEGER NOT NULL)"
)
DROPS = "SELECT count FROM fastpool_drops"
COUNT_DROP = (
    "INSERT INTO fastpool_drops (id, count) VALUES (0, 1) ON CONFLICT (id) DO UPDATE SET count = count + 1 "
    "RETURNING count"
)
DELETE_POOL = (
    "DELETE FROM agent_pool_records WHERE pool_id = ?",
    "DELETE FROM agent_pool_event_seq WHERE pool_id = ?",
)
DELETE_POINT_ENTRIES = (
    "DELETE FROM fastpool_point_keys WHERE pool_id = ?",
    "DELETE FROM fastpool_point_marks WHERE pool_id = ?",
)

SCHEMA = (*RUST_TABLES, META_TABLE, *POINT_TABLES, DROPS_TABLE)
MARK_SCHEMA_VERSION = "INSERT OR IGNORE INTO fastpool_meta (key, value) VALUES ('schema_version', ?)"
SCHEMA_VERSION_OF_FILE = "SELECT value FROM fastpool_meta WHERE key = 'schema_version'"
TABLES = "SELECT name FROM sqlite_master WHERE type = 'table'"

ROWS_AFTER = f"SELECT seq, kind, {_PAYLOAD} FROM agent_pool_records WHERE pool_id = ? AND seq > ? ORDER BY seq"
ROWS_AFTER_LIMIT = ROWS_AFTER + " LIMIT ?"
ROWS_BETWEEN = (
    f"SELECT seq, kind, {_PAYLOAD} FROM agent_pool_records WHERE pool_id = ? AND seq > ? AND seq <= ? ORDER BY seq"
)
ROWS_UP_TO = (
    f"SELECT seq, kind, {_PAYLOAD} FROM agent_pool_records WHERE pool_id = ? AND seq <= ? ORDER BY seq DESC LIMIT ?"
)
ALL_ROWS = f"SELECT pool_id, seq, kind, {_PAYLOAD} FROM agent_pool_records ORDER BY pool_id, seq"
COUNT_ROWS = "SELECT COUNT(*) FROM agent_pool_records"
POOLS = "SELECT pool_id, COUNT(*), MAX(seq) FROM agent_pool_records GROUP BY pool_id ORDER BY pool_id"
# A pool is opened by its pool_opened record (verify checks that kind columns agree with payloads).
UNOPENED = (
    "SELECT pool_id FROM (SELECT DISTINCT pool_id FROM agent_pool_records) AS pools WHERE NOT EXISTS "
    "(SELECT 1 FROM agent_pool_records AS r WHERE r.pool_id = pools.pool_id AND r.kind = 'pool_opened')"
)
INSERT = "INSERT INTO agent_pool_records (pool_id, seq, kind, payload_json) VALUES (?, ?, ?, ?)"
# A lone append as one statement in a transaction of its own (no BEGIN, no COMMIT), only if no
# pool was deleted since the writer's cache read the drops counter ?5; another connection's
# append at ?2 meanwhile makes it fail on the primary key. (No read of agent_pool_records in
# it: that would make SQLite copy the row through a temporary table first.)
APPEND_ALONE = (
    "INSERT INTO agent_pool_records (pool_id, seq, kind, payload_json) SELECT ?1, ?2, ?3, ?4 "
    "WHERE coalesce((SELECT count FROM fastpool_drops), 0) = ?5"
)
# Undoes an INSERT of the open transaction whose write then failed (its transaction goes on).
UNDO_INSERT = "DELETE FROM agent_pool_records WHERE pool_id = ? AND seq = ?"
NEXT_EVENT = (
    "INSERT INTO agent_pool_event_seq (pool_id, seq) VALUES (?, 1) "
    "ON CONFLICT (pool_id) DO UPDATE SET seq = seq + 1 RETURNING seq"
)

# fastpool copy: a pool's event sequence, whether a pool is there at all, what it holds.
EVENT_SEQUENCE = "SELECT seq FROM agent_pool_event_seq WHERE pool_id = ?"
SET_EVENT_SEQUENCE = "INSERT INTO agent_pool_event_seq (pool_id, seq) VALUES (?, ?)"
POOL_EXISTS = (
    "SELECT EXISTS (SELECT 1 FROM agent_pool_records WHERE pool_id = ?1) "
    "OR EXISTS (SELECT 1 FROM agent_pool_event_seq WHERE pool_id = ?1)"
)
POOL_EXTENT = (
    "SELECT COUNT(*), MAX(seq), (SELECT seq FROM agent_pool_event_seq WHERE pool_id = ?1) "
    "FROM agent_pool_records WHERE pool_id = ?1"
)
