"""Every SQL text of the surfaces on SQLite, one section per surface (``_pg_sql`` has the
same names for PostgreSQL; ``?N`` is the N-th parameter in both).

The ``*_SCHEMA`` texts are the crate's own ``SCHEMA`` constants, byte for byte (SQLite keeps
each statement's text in ``sqlite_master``, so a file fastpool creates reads as Rust's). The
statements are Rust's too; fastpool runs each call that reads then writes in one transaction.
"""

from __future__ import annotations

# ---------------------------------------------------------------- run journal (journal.rs)

JOURNAL_SCHEMA = """
CREATE TABLE IF NOT EXISTS run_journal_records (
    run_id TEXT NOT NULL,
    journal_seq INTEGER NOT NULL,
    record_id TEXT NOT NULL,
    record_json TEXT NOT NULL,
    PRIMARY KEY (run_id, journal_seq)
);
CREATE UNIQUE INDEX IF NOT EXISTS idx_run_journal_record_id
ON run_journal_records(run_id, record_id);
"""
# Rust reads the stored row for the id, then the run's largest sequence, then inserts: one
# statement for both reads here. (PostgreSQL's JOURNAL_APPEND inserts and checks at once; on
# SQLite an INSERT ... SELECT reading its own table goes through a temporary table: ~20 % of a
# durable send, measured, so it has none.)
JOURNAL_APPEND = None
JOURNAL_CHECK = (
    "SELECT (SELECT journal_seq FROM run_journal_records WHERE run_id = ?1 AND record_id = ?2), "
    "(SELECT COALESCE(MAX(journal_seq), 0) FROM run_journal_records WHERE run_id = ?1)"
)
JOURNAL_INSERT = "INSERT INTO run_journal_records (run_id, journal_seq, record_id, record_json) VALUES (?1, ?2, ?3, ?4)"
JOURNAL_FOR_RUN = "SELECT record_json FROM run_journal_records WHERE run_id = ?1 ORDER BY journal_seq ASC"

# ---------------------------------------------------------------- event archive (event_archive.rs)

ARCHIVE_SCHEMA = """
CREATE TABLE IF NOT EXISTS event_archive_frames (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    frame_json TEXT NOT NULL
);
"""
ARCHIVE_NEXT = "SELECT COALESCE(MAX(seq), 0) + 1 FROM event_archive_frames"
ARCHIVE_INSERT = "INSERT INTO event_archive_frames (seq, event_id, frame_json) VALUES (?1, ?2, ?3)"
ARCHIVE_AFTER = "SELECT frame_json FROM event_archive_frames WHERE seq > ?1 ORDER BY seq ASC"

# ---------------------------------------------------------------- checkpoints (checkpoint.rs)

CHECKPOINT_SCHEMA = """
CREATE TABLE IF NOT EXISTS checkpoints (
    run_id TEXT NOT NULL,
    checkpoint_id TEXT NOT NULL,
    latest_journal_seq INTEGER NOT NULL,
    checkpoint_json TEXT NOT NULL,
    PRIMARY KEY (run_id, checkpoint_id)
);
CREATE INDEX IF NOT EXISTS idx_checkpoints_latest
ON checkpoints(run_id, latest_journal_seq);
"""
CHECKPOINT_SAVE = (
    "INSERT OR REPLACE INTO checkpoints (run_id, checkpoint_id, latest_journal_seq, checkpoint_json) "
    "VALUES (?1, ?2, ?3, ?4)"
)
# The same query as Rust's, so that a tie on the covered sequence breaks the same way (the
# index scanned backwards: the row written last wins).
CHECKPOINT_LATEST = "SELECT checkpoint_json FROM checkpoints WHERE run_id = ?1 ORDER BY latest_journal_seq DESC LIMIT 1"
CHECKPOINT_AT_OR_BEFORE = (
    "SELECT checkpoint_json FROM checkpoints WHERE run_id = ?1 AND latest_journal_seq <= ?2 "
    "ORDER BY latest_journal_seq DESC LIMIT 1"
)
CHECKPOINT_PRUNABLE = "SELECT checkpoint_id FROM checkpoints WHERE run_id = ?1 AND latest_journal_seq < ?2"
CHECKPOINT_COUNT = "SELECT COUNT(*) FROM checkpoints WHERE run_id = ?1"
CHECKPOINT_DELETE = "DELETE FROM checkpoints WHERE run_id = ?1 AND checkpoint_id = ?2 RETURNING checkpoint_id"

# ---------------------------------------------------------------- content (content.rs)

CONTENT_SCHEMA = """
CREATE TABLE IF NOT EXISTS content (
    content_ref TEXT PRIMARY KEY,
    content_json TEXT NOT NULL,
    bytes BLOB NOT NULL,
    byte_len INTEGER NOT NULL
);
"""
CONTENT_PUT = "INSERT OR REPLACE INTO content (content_ref, content_json, bytes, byte_len) VALUES (?1, ?2, ?3, ?4)"
CONTENT_GET = "SELECT content_json, bytes FROM content WHERE content_ref = ?1"

# ---------------------------------------------------------------- tool executions (tool_execution.rs)

TOOL_SCHEMA = """
CREATE TABLE IF NOT EXISTS tool_execution_records (
    run_id TEXT NOT NULL,
    tool_call_id TEXT NOT NULL,
    journal_seq INTEGER NOT NULL,
    idempotency_key TEXT,
    effect_id TEXT,
    record_json TEXT NOT NULL,
    PRIMARY KEY (run_id, tool_call_id, journal_seq)
);
CREATE INDEX IF NOT EXISTS idx_tool_execution_idempotency
ON tool_execution_records(idempotency_key);
CREATE INDEX IF NOT EXISTS idx_tool_execution_effect
ON tool_execution_records(effect_id);
CREATE INDEX IF NOT EXISTS idx_tool_execution_run_seq
ON tool_execution_records(run_id, journal_seq);
"""
TOOL_PUT = (
    "INSERT OR REPLACE INTO tool_execution_records "
    "(run_id, tool_call_id, journal_seq, idempotency_key, effect_id, record_json) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
)
TOOL_COUNT = "SELECT COUNT(*) FROM tool_execution_records WHERE run_id = ?1"
TOOL_FOR_RUN = "SELECT record_json FROM tool_execution_records WHERE run_id = ?1 ORDER BY journal_seq ASC"
TOOL_FOR_CALL = (
    "SELECT record_json FROM tool_execution_records WHERE run_id = ?1 AND tool_call_id = ?2 "
    "ORDER BY journal_seq DESC LIMIT 1"
)
TOOL_FOR_KEY = (
    "SELECT record_json FROM tool_execution_records WHERE idempotency_key = ?1 ORDER BY run_id ASC, journal_seq ASC"
)
TOOL_FOR_EFFECT = (
    "SELECT record_json FROM tool_execution_records WHERE effect_id = ?1 ORDER BY run_id ASC, journal_seq ASC"
)
TOOL_AFTER = (
    "SELECT record_json FROM tool_execution_records WHERE run_id = ?1 AND journal_seq > ?2 ORDER BY journal_seq ASC"
)
TOOL_RANGE = (
    "SELECT record_json FROM tool_execution_records WHERE run_id = ?1 AND (?2 IS NULL OR journal_seq > ?2) "
    "AND (?3 IS NULL OR journal_seq <= ?3) ORDER BY journal_seq ASC"
)

# ---------------------------------------------------------------- provider arguments (provider_arguments.rs)

PROVIDER_SCHEMA = """
CREATE TABLE IF NOT EXISTS provider_arguments (
    content_ref TEXT PRIMARY KEY,
    provider_ref TEXT NOT NULL,
    call_id TEXT NOT NULL,
    canonical_tool_name TEXT NOT NULL,
    raw_arguments TEXT NOT NULL
);
"""
PROVIDER_PUT = (
    "INSERT OR REPLACE INTO provider_arguments (content_ref, provider_ref, call_id, canonical_tool_name, "
    "raw_arguments) VALUES (?1, ?2, ?3, ?4, ?5)"
)
PROVIDER_GET = "SELECT raw_arguments FROM provider_arguments WHERE content_ref = ?1"

# ---------------------------------------------------------------- the agent pool store's tables, as Rust writes them

# The bundle creates them with the Rust crate's text before fastpool's pool store opens the
# file (which then adds nothing: a file with Rust's tables and no fastpool_meta stays Rust's).
AGENT_POOL_SCHEMA = """
CREATE TABLE IF NOT EXISTS agent_pool_records (
                     pool_id TEXT NOT NULL,
                     seq INTEGER NOT NULL,
                     kind TEXT NOT NULL,
                     payload_json TEXT NOT NULL,
                     PRIMARY KEY (pool_id, seq)
                 );
CREATE TABLE IF NOT EXISTS agent_pool_event_seq (
                     pool_id TEXT PRIMARY KEY,
                     seq INTEGER NOT NULL
                 );
"""

# ---------------------------------------------------------------- fastpool's durable runtime (not Rust's)
# open_runtime adds an index to Rust's journal table (a Rust host ignores it) and a side table
# naming each archived frame's run and kind, so a wake's first match is a lookup, not a scan.
RUNTIME_SCHEMA = """CREATE INDEX IF NOT EXISTS fastpool_run_journal_seq ON run_journal_records(journal_seq);
CREATE TABLE IF NOT EXISTS fastpool_event_index (
    seq INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    event_kind TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS fastpool_event_index_run ON fastpool_event_index(run_id, seq);
CREATE INDEX IF NOT EXISTS fastpool_event_index_kind ON fastpool_event_index(event_kind, seq)"""
JOURNAL_NEXT_SEQ = "SELECT COALESCE(MAX(journal_seq), 0) + 1 FROM run_journal_records"
EVENT_INDEX_INSERT = "INSERT INTO fastpool_event_index (seq, run_id, event_kind) VALUES (?1, ?2, ?3)"
ARCHIVE_INSERT_INDEXED = None  # PostgreSQL's: a frame and its index row in one statement (one round trip)
ARCHIVE_BATCH = "SELECT seq, frame_json FROM event_archive_frames WHERE seq > ?1 ORDER BY seq ASC LIMIT ?2"
ARCHIVE_BY_KIND = (
    "SELECT f.seq, f.frame_json FROM fastpool_event_index i JOIN event_archive_frames f ON f.seq = i.seq "
    "WHERE i.event_kind = ?1 AND i.seq > ?2 ORDER BY i.seq ASC LIMIT ?3"
)
ARCHIVE_BY_RUN = (
    "SELECT f.seq, f.frame_json FROM fastpool_event_index i JOIN event_archive_frames f ON f.seq = i.seq "
    "WHERE i.run_id = ?1 AND i.seq > ?2 ORDER BY i.seq ASC LIMIT ?3"
)

# ---------------------------------------------------------------- retention (fastpool's, not Rust's)
# A prune keeps the newest rows (each run's latest journal record, the archive's last frame), so
# the numbering that reads MAX() + 1 goes on where it was; ?N as in prune's code.
JOURNAL_PRUNABLE = (
    "SELECT run_id, journal_seq FROM (SELECT run_id, journal_seq, ROW_NUMBER() OVER "
    "(PARTITION BY run_id ORDER BY journal_seq DESC) AS newer FROM run_journal_records "
    "WHERE ?1 IS NULL OR run_id = ?1) AS ranked "
    "WHERE newer > ?2 AND (?3 IS NULL OR (journal_seq >= 0 AND journal_seq < ?3))"
)
JOURNAL_PRUNE_COUNT = "SELECT COUNT(*) FROM (" + JOURNAL_PRUNABLE + ") AS pruned"
JOURNAL_PRUNE = "DELETE FROM run_journal_records WHERE (run_id, journal_seq) IN (" + JOURNAL_PRUNABLE + ")"
ARCHIVE_NEWEST = "SELECT seq FROM event_archive_frames ORDER BY seq DESC LIMIT 1 OFFSET ?1"
ARCHIVE_FIRST = "SELECT COALESCE(MIN(seq), 0) FROM event_archive_frames"
ARCHIVE_PRUNE_COUNT = "SELECT COUNT(*) FROM event_archive_frames WHERE seq < ?1"
ARCHIVE_PRUNE = "DELETE FROM event_archive_frames WHERE seq < ?1"
EVENT_INDEX_PRESENT = "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'fastpool_event_index'"
EVENT_INDEX_PRUNE = "DELETE FROM fastpool_event_index WHERE seq < ?1"

#: Each surface's CREATE text by the name its class gives (``Surface.NAME``).
SCHEMAS = {
    "journal": JOURNAL_SCHEMA,
    "archive": ARCHIVE_SCHEMA,
    "checkpoint": CHECKPOINT_SCHEMA,
    "content": CONTENT_SCHEMA,
    "tool_execution": TOOL_SCHEMA,
    "provider_arguments": PROVIDER_SCHEMA,
    "agent_pool": AGENT_POOL_SCHEMA,
    "runtime": RUNTIME_SCHEMA,
}

#: The surfaces' tables, in the order the bundle creates them (what ``fastpool inspect`` lists).
TABLES = (
    "run_journal_records",
    "checkpoints",
    "content",
    "event_archive_frames",
    "provider_arguments",
    "tool_execution_records",
)
SQLITE_TABLES_PRESENT = "SELECT name FROM sqlite_master WHERE type = 'table'"
