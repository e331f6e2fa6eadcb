"""The environment switches, read by the same code in setup.py and at import (``_compat``).

Standard library only: setup.py runs this file before fastpool's dependencies exist.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping


def extensions_disabled(environ: Mapping[str, str] = os.environ) -> bool:
    """True when the pure-Python twin is requested: FASTPOOL_NO_EXTENSIONS non-empty, or not CPython."""
    return no_extensions_set(environ) or platform.python_implementation() != "CPython"


def no_extensions_set(environ: Mapping[str, str] = os.environ) -> bool:
    """True when FASTPOOL_NO_EXTENSIONS is set to a non-empty value."""
    return bool(environ.get("FASTPOOL_NO_EXTENSIONS", ""))


def extensions_required(environ: Mapping[str, str] = os.environ) -> bool:
    """True when a missing compiled engine must be an error (FASTPOOL_REQUIRE_EXTENSIONS non-empty)."""
    return bool(environ.get("FASTPOOL_REQUIRE_EXTENSIONS", ""))
