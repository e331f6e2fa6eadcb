"""Every SQL text of the SQLite store, its tools and its benchmarks, in one place.

The two tables are the Rust crate's (SPEC §5.3), byte for byte in meaning; ``fastpool_meta``
is fastpool's own format marker.
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
SCHEMA = (*RUST_TABLES, META_TABLE)
MARK_SCHEMA_VERSION = "INSERT OR IGNORE INTO fastpool_meta (key, value) VALUES ('schema_version', ?)"
SCHEMA_VERSION_OF_FILE = "SELECT value FROM fastpool_meta WHERE key = 'schema_version'"
TABLES = "SELECT name FROM sqlite_master WHERE type = 'table'"

# payload_json is TEXT; a BLOB in it (which SQLite allows) is read as NULL, so that the
# engines refuse it as a corrupt record, as the Rust crate does, instead of decoding bytes.
_PAYLOAD = "CASE WHEN typeof(payload_json) = 'text' THEN payload_json END"
ROWS_AFTER = f"SELECT seq, kind, {_PAYLOAD} FROM agent_pool_records WHERE pool_id = ? AND seq > ? ORDER BY seq"
ROWS_AFTER_LIMIT = ROWS_AFTER + " LIMIT ?"
ALL_ROWS = f"SELECT pool_id, seq, kind, {_PAYLOAD} FROM agent_pool_records ORDER BY pool_id, seq"
COUNT_ROWS = "SELECT COUNT(*) FROM agent_pool_records"
POOLS = "SELECT pool_id, COUNT(*), MAX(seq) FROM agent_pool_records GROUP BY pool_id ORDER BY pool_id"
# A pool is opened by its pool_opened record (verify checks that kind columns agree with payloads).
UNOPENED = (
    "SELECT pool_id FROM (SELECT DISTINCT pool_id FROM agent_pool_records) AS pools WHERE NOT EXISTS "
    "(SELECT 1 FROM agent_pool_records AS r WHERE r.pool_id = pools.pool_id AND r.kind = 'pool_opened')"
)
INSERT = "INSERT INTO agent_pool_records (pool_id, seq, kind, payload_json) VALUES (?, ?, ?, ?)"
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
