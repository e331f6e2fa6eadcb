"""Worker processes for test_surfaces_processes.py: each opens a surface on one target (a file
path, or ``(conninfo, schema)`` for PostgreSQL) and runs a job that reads then writes,
``count`` times, at once with the others.

Spawn children import this module by name. A job returns plain data per call; an error is
reported (with what was done before it), never raised. The values are the golden fixtures'.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from typing import Any

from helpers import FIXTURES
from store_helpers import _error_data, _identity

import fastpool
from fastpool import wire
from fastpool.model import EventFrame, JournalRecord
from fastpool.store_model import (
    CheckpointPrunePolicy,
    ContentReference,
    ContentResolutionPolicy,
    ContentResolveRequest,
    RunCheckpoint,
    ToolExecutionStoreRecord,
)

RUN = "run.mp"


def open_surface(kind: str, target: Any) -> Any:
    """``Sqlite<kind>`` on a file path, ``Postgres<kind>`` on ``(conninfo, schema)``."""
    if isinstance(target, (tuple, list)):
        conninfo, schema = target
        return getattr(fastpool, f"Postgres{kind}").open(conninfo, schema=schema)
    return getattr(fastpool, f"Sqlite{kind}").open(target)


@cache
def template(surface: str, method: str, argument: str) -> str:
    """The JSON of ``argument`` in the first golden call of ``surface``'s ``method``."""
    with (FIXTURES / "surfaces" / f"{surface}.jsonl").open(encoding="utf-8") as handle:
        for text in handle:
            line = json.loads(text)
            if line["line"] == "call" and line["method"] == method:
                return json.dumps(json.loads(line["args_json"])[argument])
    raise LookupError((surface, method, argument))


def journal_record(seq: int) -> JournalRecord:
    """Record ``seq`` of run ``RUN``: every worker appends the same ones, in order."""
    record = wire.decode(JournalRecord, template("run_journal", "append", "record"))
    return record.replace(run_id=RUN, journal_seq=seq, record_id=f"journal.record.mp.{seq}")


def job_journal(target: Any, worker: int, count: int) -> list[Any]:
    with open_surface("RunJournal", target) as journal:
        return [journal.append(journal_record(seq)) for seq in range(1, count + 1)]


def job_archive(target: Any, worker: int, count: int) -> list[Any]:
    frame = wire.decode(EventFrame, template("event_archive", "append_frame", "frame"))
    with open_surface("EventArchive", target) as archive:
        return [archive.append_frame(frame).position for _ in range(count)]


def job_checkpoint(target: Any, worker: int, count: int) -> list[Any]:
    """Save a newer checkpoint, then prune everything but the latest: one retained each time."""
    base = wire.decode(RunCheckpoint, template("checkpoint", "save", "checkpoint"))
    prune_all = CheckpointPrunePolicy(prune_covered_before=2**62, preserve_latest_terminal=True)
    reports = []
    with open_surface("CheckpointStore", target) as store:
        for n in range(count):
            covers = n * 16 + worker + 1
            checkpoint = base.replace(run_id=RUN, checkpoint_id=f"ck.{worker}.{n}", covers_journal_seq=covers)
            store.save(checkpoint, covers)
            report = store.prune(RUN, prune_all)
            reports.append([covers, report.pruned_count, report.retained_count])
    return reports


def job_content(target: Any, worker: int, count: int) -> list[Any]:
    """Replace one content id with this worker's bytes and resolve it: the bytes always match
    the stored ref's hash."""
    import hashlib

    request = wire.decode(ContentResolveRequest, template("content", "resolve", "request"))
    policy = wire.decode(ContentResolutionPolicy, template("content", "resolve", "policy"))
    ref = wire.decode(ContentReference, template("content", "put_content", "content_ref"))
    answers = []
    with open_surface("ContentStore", target) as store:
        for n in range(count):
            data = f"worker {worker} version {n}".encode()
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            store.put_content(ref.replace(content_hash=digest, size_bytes=len(data)), data)
            resolved = store.resolve(request, policy)
            answers.append(bytes(resolved.bytes or ()).decode())
    return answers


def job_tool_execution(target: Any, worker: int, count: int) -> list[Any]:
    record = wire.decode(ToolExecutionStoreRecord, template("tool_execution", "put_tool_execution_record", "record"))
    with open_surface("ToolExecutionStore", target) as store:
        return [
            store.put_tool_execution_record(
                record.replace(run_id=RUN, tool_call_id=f"tool.call.{worker}", journal_seq=n + 1)
            ).sequence
            for n in range(count)
        ]


def job_provider_arguments(target: Any, worker: int, count: int) -> list[Any]:
    """Every worker stores the same texts (one row each) and one of its own."""
    with open_surface("ProviderArgumentStore", target) as store:
        refs = [
            store.store_provider_arguments("provider.mp", f"call.{worker}", "tool", f'{{"n":{n}}}')
            for n in range(count)
        ]
        refs.append(store.store_provider_arguments("provider.mp", "own", "tool", f'{{"worker":{worker}}}'))
        return refs


JOBS: dict[str, Callable[[Any, int, int], list[Any]]] = {
    "journal": job_journal,
    "archive": job_archive,
    "checkpoint": job_checkpoint,
    "content": job_content,
    "tool_execution": job_tool_execution,
    "provider_arguments": job_provider_arguments,
}


def mp_surface_job(target: Any, job: str, worker: int, count: int, barrier: Any, results: Any) -> None:
    """Run ``JOBS[job]`` once the others are ready; report its answers or its error."""
    report = _identity() | {"worker": worker, "answers": [], "errors": []}
    try:
        barrier.wait(timeout=30)
        report["answers"] = JOBS[job](target, worker, count)
    except BaseException as error:
        barrier.abort()
        report["errors"].append(_error_data(error))
    results.put(report)
