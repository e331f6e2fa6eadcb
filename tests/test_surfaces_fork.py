"""A surface inherited through fork() refuses every call in the child (HOST_CONFIGURATION_NEEDED,
as the stores do) and leaves the parent's connection alone; the parent keeps working."""

from __future__ import annotations

import os
import signal
import warnings
from pathlib import Path

import pytest
from helpers import child_exit_code
from surface_workers import journal_record

import fastpool
from fastpool.enums import AgentErrorKind

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() here")


def forked_child_code(journal: fastpool.SqliteRunJournal, path: Path) -> int:
    """Fork; the child calls the inherited journal, then one of its own, and exits 0 when the
    first refused as documented and the second read the parent's records."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 9
        try:
            signal.alarm(10)
            journal.records_for_run("run.mp")
            code = 2
        except fastpool.AgentError as error:
            code = 3
            if error.kind is AgentErrorKind.HOST_CONFIGURATION_NEEDED and "fork" in error.message:
                journal.close()  # harmless: the parent's connection is left alone
                with fastpool.SqliteRunJournal.open(path) as own:
                    code = 0 if len(own.records_for_run("run.mp")) == 1 else 5
        except BaseException:
            code = 4
        os._exit(code)
    code = child_exit_code(pid)
    return -1 if code is None else code


def test_a_surface_used_after_fork_refuses_and_the_parent_keeps_working(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    with fastpool.SqliteRunJournal.open(path) as journal:
        journal.append(journal_record(1))
        assert forked_child_code(journal, path) == 0
        assert journal.append(journal_record(2)) == "journal.2"
        assert [record.journal_seq for record in journal.records_for_run("run.mp")] == [1, 2]
