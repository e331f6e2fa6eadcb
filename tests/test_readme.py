"""The README's synopsis runs as printed, and prints what its comments say."""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def synopsis_blocks() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Synopsis") : text.index("\n## ", text.index("## Synopsis") + 1)]
    return re.findall(r"^```python\n(.*?)^```$", section, re.S | re.M)  # not the indented examples


def test_the_synopsis_runs_and_prints_what_it_says(tmp_path: Path) -> None:
    blocks = synopsis_blocks()
    assert len(blocks) == 2
    printed = io.StringIO()
    namespace: dict[str, object] = {}
    here = os.getcwd()
    os.chdir(tmp_path)  # the synopsis creates pools.sqlite in the working directory
    try:
        with contextlib.redirect_stdout(printed):
            for block in blocks:
                exec(compile(block, str(README), "exec"), namespace)
    finally:
        os.chdir(here)
    lines = printed.getvalue().splitlines()
    assert lines[:5] == [
        "registered",
        "delivered ('run.b',)",
        "True",
        "triggered",
        "['wake', 'run_message', 'run_message', 'wake']",
    ]
    assert lines[5].endswith("AgentPoolStoreCursor(sequence=3))") and lines[6].endswith(", None)")
    assert (tmp_path / "pools.sqlite").is_file()
