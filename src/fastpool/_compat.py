"""The one place that picks the replay engine: compiled ``_replay`` or the ``_replay_py`` twin.

``FASTPOOL_NO_EXTENSIONS`` set to any non-empty value selects the twin (setup.py applies
the same rule, from ``_env``, to skip the build). With ``FASTPOOL_REQUIRE_EXTENSIONS`` set,
a missing compiled engine is an ImportError instead of a silent fallback.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._env import extensions_disabled, extensions_required

if TYPE_CHECKING:
    from . import _replay_py as engine
elif extensions_disabled():
    from . import _replay_py as engine
else:
    try:
        from . import _replay as engine
    except ImportError:
        if extensions_required():
            raise
        from . import _replay_py as engine

__all__ = ["engine", "USE_EXTENSIONS"]

#: True when the compiled engine is loaded.
USE_EXTENSIONS: bool = engine.__name__ == "fastpool._replay"
