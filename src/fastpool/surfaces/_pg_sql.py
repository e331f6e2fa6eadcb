"""Every SQL text of the surfaces on PostgreSQL: ``_sql``'s names, ``{s}`` the quoted schema.

The tables have the SQLite tables' columns (``bytea`` for a BLOB, ``bigint`` for an INTEGER,
keys ``COLLATE "C"``: byte order, as SQLite's). ``checkpoints`` has one more column,
``written``, renewed on every save: SQLite's ``INSERT OR REPLACE`` gives a replaced row a new
rowid, and a tie on the covered sequence goes to the row written last.
"""

from __future__ import annotations

JOURNAL_SCHEMA = """CREATE TABLE IF NOT EXISTS {s}.run_journal_records (
    run_id text COLLATE "C" NOT NULL,
    journal_seq bigint NOT NULL,
    record_id text COLLATE "C" NOT NULL,
    record_json text NOT NULL,
    PRIMARY KEY (run_id, journal_seq),
    UNIQUE (run_id, record_id))"""
# Rust reads the stored row for the id, then the run's largest sequence, then inserts. Here the
# insert checks both (the largest, signed, from 0 to below the new one: Rust's unsigned rule for
# a sequence below 2^63) and returns the row only if it inserted; else JOURNAL_CHECK tells why:
# one round trip for the common append.
JOURNAL_APPEND = (
    "INSERT INTO {s}.run_journal_records (run_id, journal_seq, record_id, record_json) SELECT ?1, ?2, ?3, ?4 "
    "WHERE NOT EXISTS (SELECT 1 FROM {s}.run_journal_records WHERE run_id = ?1 AND record_id = ?3) "
    "AND (SELECT COALESCE(MAX(journal_seq), 0) FROM {s}.run_journal_records WHERE run_id = ?1) BETWEEN 0 AND ?2 - 1 "
    "RETURNING journal_seq"
)
JOURNAL_CHECK = (
    "SELECT (SELECT journal_seq FROM {s}.run_journal_records WHERE run_id = ?1 AND record_id = ?2), "
    "(SELECT COALESCE(MAX(journal_seq), 0) FROM {s}.run_journal_records WHERE run_id = ?1)"
)
JOURNAL_INSERT = (
    "INSERT INTO {s}.run_journal_records (run_id, journal_seq, record_id, record_json) VALUES (?1, ?2, ?3, ?4)"
)
JOURNAL_FOR_RUN = "SELECT record_json FROM {s}.run_journal_records WHERE run_id = ?1 ORDER BY journal_seq ASC"

ARCHIVE_SCHEMA = """CREATE TABLE IF NOT EXISTS {s}.event_archive_frames (
    seq bigint PRIMARY KEY,
    event_id text NOT NULL,
    frame_json text NOT NULL)"""
ARCHIVE_NEXT = "SELECT COALESCE(MAX(seq), 0) + 1 FROM {s}.event_archive_frames"
ARCHIVE_INSERT = "INSERT INTO {s}.event_archive_frames (seq, event_id, frame_json) VALUES (?1, ?2, ?3)"
ARCHIVE_AFTER = "SELECT frame_json FROM {s}.event_archive_frames WHERE seq > ?1::bigint ORDER BY seq ASC"

CHECKPOINT_SCHEMA = """CREATE TABLE IF NOT EXISTS {s}.checkpoints (
    run_id text COLLATE "C" NOT NULL,
    checkpoint_id text COLLATE "C" NOT NULL,
    latest_journal_seq bigint NOT NULL,
    checkpoint_json text NOT NULL,
    written bigserial NOT NULL,
    PRIMARY KEY (run_id, checkpoint_id));
CREATE INDEX IF NOT EXISTS idx_checkpoints_latest ON {s}.checkpoints (run_id, latest_journal_seq, written)"""
CHECKPOINT_SAVE = (
    "INSERT INTO {s}.checkpoints (run_id, checkpoint_id, latest_journal_seq, checkpoint_json) "
    "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (run_id, checkpoint_id) DO UPDATE SET "
    "latest_journal_seq = EXCLUDED.latest_journal_seq, checkpoint_json = EXCLUDED.checkpoint_json, written = DEFAULT"
)
CHECKPOINT_LATEST = (
    "SELECT checkpoint_json FROM {s}.checkpoints WHERE run_id = ?1 "
    "ORDER BY latest_journal_seq DESC, written DESC LIMIT 1"
)
CHECKPOINT_AT_OR_BEFORE = (
    "SELECT checkpoint_json FROM {s}.checkpoints WHERE run_id = ?1 AND latest_journal_seq <= ?2::bigint "
    "ORDER BY latest_journal_seq DESC, written DESC LIMIT 1"
)
CHECKPOINT_PRUNABLE = "SELECT checkpoint_id FROM {s}.checkpoints WHERE run_id = ?1 AND latest_journal_seq < ?2::bigint"
CHECKPOINT_COUNT = "SELECT COUNT(*) FROM {s}.checkpoints WHERE run_id = ?1"
CHECKPOINT_DELETE = "DELETE FROM {s}.checkpoints WHERE run_id = ?1 AND checkpoint_id = ?2 RETURNING checkpoint_id"

CONTENT_SCHEMA = """CREATE TABLE IF NOT EXISTS {s}.content (
    content_ref text COLLATE "C" PRIMARY KEY,
    content_json text NOT NULL,
    bytes bytea NOT NULL,
    byte_len bigint NOT NULL)"""
CONTENT_PUT = (
    "INSERT INTO {s}.content (content_ref, content_json, bytes, byte_len) VALUES (?1, ?2, ?3, ?4) "
    "ON CONFLICT (content_ref) DO UPDATE SET content_json = EXCLUDED.content_json, bytes = EXCLUDED.bytes, "
    "byte_len = EXCLUDED.byte_len"
)
CONTENT_GET = "SELECT content_json, bytes FROM {s}.content WHERE content_ref = ?1"

TOOL_SCHEMA = """CREATE TABLE IF NOT EXISTS {s}.tool_execution_records (
    run_id text COLLATE "C" NOT NULL,
    tool_call_id text COLLATE "C" NOT NULL,
    journal_seq bigint NOT NULL,
    idempotency_key text,
    effect_id text,
    record_json text NOT NULL,
    PRIMARY KEY (run_id, tool_call_id, journal_seq));
CREATE INDEX IF NOT EXISTS idx_tool_execution_idempotency ON {s}.tool_execution_records (idempotency_key);
CREATE INDEX IF NOT EXISTS idx_tool_execution_effect ON {s}.tool_execution_records (effect_id);
CREATE INDEX IF NOT EXISTS idx_tool_execution_run_seq ON {s}.tool_execution_records (run_id, journal_seq)"""
TOOL_PUT = (
    "INSERT INTO {s}.tool_execution_records "
    "(run_id, tool_call_id, journal_seq, idempotency_key, effect_id, record_json) VALUES (?1, ?2, ?3, ?4, ?5, ?6) "
    "ON CONFLICT (run_id, tool_call_id, journal_seq) DO UPDATE SET idempotency_key = EXCLUDED.idempotency_key, "
    "effect_id = EXCLUDED.effect_id, record_json = EXCLUDED.record_json"
)
TOOL_COUNT = "SELECT COUNT(*) FROM {s}.tool_execution_records WHERE run_id = ?1"
TOOL_FOR_RUN = "SELECT record_json FROM {s}.tool_execution_records WHERE run_id = ?1 ORDER BY journal_seq ASC"
TOOL_FOR_CALL = (
    "SELECT record_json FROM {s}.tool_execution_records WHERE run_id = ?1 AND tool_call_id = ?2 "
    "ORDER BY journal_seq DESC LIMIT 1"
)
TOOL_FOR_KEY = (
    "SELECT record_json FROM {s}.tool_execution_records WHERE idempotency_key = ?1 ORDER BY run_id ASC, journal_seq ASC"
)
TOOL_FOR_EFFECT = (
    "SELECT record_json FROM {s}.tool_execution_records WHERE effect_id = ?1 ORDER BY run_id ASC, journal_seq ASC"
)
TOOL_AFTER = (
    "SELECT record_json FROM {s}.tool_execution_records WHERE run_id = ?1 AND journal_seq > ?2::bigint "
    "ORDER BY journal_seq ASC"
)
TOOL_RANGE = (
    "SELECT record_json FROM {s}.tool_execution_records WHERE run_id = ?1 "
    "AND (?2::bigint IS NULL OR journal_seq > ?2::bigint) AND (?3::bigint IS NULL OR journal_seq <= ?3::bigint) "
    "ORDER BY journal_seq ASC"
)

PROVIDER_SCHEMA = """CREATE TABLE IF NOT EXISTS {s}.provider_arguments (
    content_ref text COLLATE "C" PRIMARY KEY,
    provider_ref text NOT NULL,
    call_id text NOT NULL,
    canonical_tool_name text NOT NULL,
    raw_arguments text NOT NULL)"""
PROVIDER_PUT = (
    "INSERT INTO {s}.provider_arguments (content_ref, provider_ref, call_id, canonical_tool_name, raw_arguments) "
    "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (content_ref) DO UPDATE SET provider_ref = EXCLUDED.provider_ref, "
    "call_id = EXCLUDED.call_id, canonical_tool_name = EXCLUDED.canonical_tool_name, "
    "raw_arguments = EXCLUDED.raw_arguments"
)
PROVIDER_GET = "SELECT raw_arguments FROM {s}.provider_arguments WHERE content_ref = ?1"

# fastpool's durable runtime (not Rust's): journal sequences from a sequence shared by every
# host, and the side table of archived frames' runs and kinds that wake matching looks up.
RUNTIME_SCHEMA = """CREATE SEQUENCE IF NOT EXISTS {s}.fastpool_journal_seq;
CREATE TABLE IF NOT EXISTS {s}.fastpool_event_index (
    seq bigint PRIMARY KEY,
    run_id text COLLATE "C" NOT NULL,
    event_kind text COLLATE "C" NOT NULL);
CREATE INDEX IF NOT EXISTS fastpool_event_index_run ON {s}.fastpool_event_index (run_id, seq);
CREATE INDEX IF NOT EXISTS fastpool_event_index_kind ON {s}.fastpool_event_index (event_kind, seq)"""
JOURNAL_NEXT_SEQ = "SELECT nextval('{s}.fastpool_journal_seq')"
JOURNAL_NEXT_SEQ_AND_ARCHIVE = (
    "SELECT nextval('{s}.fastpool_journal_seq'), (SELECT COALESCE(MAX(seq), 0) + 1 FROM {s}.event_archive_frames)"
)
EVENT_INDEX_INSERT = "INSERT INTO {s}.fastpool_event_index (seq, run_id, event_kind) VALUES (?1, ?2, ?3)"
# ARCHIVE_INSERT then EVENT_INDEX_INSERT in one statement: one round trip, not two.
ARCHIVE_INSERT_INDEXED = (
    "WITH frame AS (INSERT INTO {s}.event_archive_frames (seq, event_id, frame_json) VALUES (?1, ?2, ?3)) "
    "INSERT INTO {s}.fastpool_event_index (seq, run_id, event_kind) VALUES (?1, ?4, ?5)"
)
ARCHIVE_BATCH = "SELECT seq, frame_json FROM {s}.event_archive_frames WHERE seq > ?1::bigint ORDER BY seq ASC LIMIT ?2"
ARCHIVE_BY_KIND = (
    "SELECT f.seq, f.frame_json FROM {s}.fastpool_event_index i JOIN {s}.event_archive_frames f ON f.seq = i.seq "
    "WHERE i.event_kind = ?1 AND i.seq > ?2::bigint ORDER BY i.seq ASC LIMIT ?3"
)
ARCHIVE_BY_RUN = (
    "SELECT f.seq, f.frame_json FROM {s}.fastpool_event_index i JOIN {s}.event_archive_frames f ON f.seq = i.seq "
    "WHERE i.run_id = ?1 AND i.seq > ?2::bigint ORDER BY i.seq ASC LIMIT ?3"
)

# Retention (fastpool's, not Rust's): as _sql's.
JOURNAL_PRUNABLE = (
    "SELECT run_id, journal_seq FROM (SELECT run_id, journal_seq, ROW_NUMBER() OVER "
    "(PARTITION BY run_id ORDER BY journal_seq DESC) AS newer FROM {s}.run_journal_records "
    "WHERE ?1::text IS NULL OR run_id = ?1::text) AS ranked "
    "WHERE newer > ?2::bigint AND (?3::bigint IS NULL OR (journal_seq >= 0 AND journal_seq < ?3::bigint))"
)
JOURNAL_PRUNE_COUNT = "SELECT COUNT(*) FROM (" + JOURNAL_PRUNABLE + ") AS pruned"
JOURNAL_PRUNE = "DELETE FROM {s}.run_journal_records WHERE (run_id, journal_seq) IN (" + JOURNAL_PRUNABLE + ")"
ARCHIVE_NEWEST = "SELECT seq FROM {s}.event_archive_frames ORDER BY seq DESC LIMIT 1 OFFSET ?1::bigint"
ARCHIVE_FIRST = "SELECT COALESCE(MIN(seq), 0) FROM {s}.event_archive_frames"
ARCHIVE_PRUNE_COUNT = "SELECT COUNT(*) FROM {s}.event_archive_frames WHERE seq < ?1::bigint"
ARCHIVE_PRUNE = "DELETE FROM {s}.event_archive_frames WHERE seq < ?1::bigint"
# The side table in the archive's schema (found through a row's tableoid: no schema name in a literal).
EVENT_INDEX_PRESENT = (
    "SELECT COUNT(*) FROM pg_class WHERE relname = 'fastpool_event_index' AND relkind = 'r' AND relnamespace = "
    "(SELECT relnamespace FROM pg_class WHERE oid = (SELECT tableoid FROM {s}.event_archive_frames LIMIT 1))"
)
EVENT_INDEX_PRUNE = "DELETE FROM {s}.fastpool_event_index WHERE seq < ?1::bigint"

#: Each surface's CREATE text by the name its class gives (``Surface.NAME``); the pool store
#: creates its own tables.
SCHEMAS = {
    "journal": JOURNAL_SCHEMA,
    "archive": ARCHIVE_SCHEMA,
    "checkpoint": CHECKPOINT_SCHEMA,
    "content": CONTENT_SCHEMA,
    "tool_execution": TOOL_SCHEMA,
    "provider_arguments": PROVIDER_SCHEMA,
    "runtime": RUNTIME_SCHEMA,
}

PG_TABLES_PRESENT = "SELECT tablename::text FROM pg_tables WHERE schemaname = ?1"
