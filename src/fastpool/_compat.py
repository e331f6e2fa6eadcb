"""The one place that picks the replay engine: compiled ``_replay`` or the ``_replay_py`` twin.

``FASTPOOL_NO_EXTENSIONS`` set to any non-empty value selects the twin (setup.py reads it
by the same rule to skip the build); so does any interpreter other than CPython.
"""

from __future__ import annotations

import os
import platform
from typing import TYPE_CHECKING


def extensions_disabled(environ: "os._Environ[str] | dict[str, str]" = os.environ) -> bool:
    """True when the pure-Python twin is requested (shared with setup.py)."""
    return bool(environ.get("FASTPOOL_NO_EXTENSIONS", "")) or platform.python_implementation() != "CPython"


if TYPE_CHECKING:
    from . import _replay_py as engine
else:
    if extensions_disabled():
        from . import _replay_py as engine
    else:
        try:
            from . import _replay as engine
        except ImportError:  # no compiler at install time: the twin, said loudly by USE_EXTENSIONS
            from . import _replay_py as engine

#: True when the compiled engine is loaded.
USE_EXTENSIONS: bool = engine.__name__.endswith("._replay")
