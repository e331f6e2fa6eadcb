"""Types of ``fastpool._pool_state_c``: ``_pool_state.py`` compiled, so the pure module's types."""

from typing import Any

from typing_extensions import disjoint_base

from ._pool_state import PoolState as _PurePoolState

__all__ = ["PoolState"]

@disjoint_base
class PoolState(_PurePoolState):
    """The pure class's attributes and methods (one source), as an extension type."""

    # Cython's pickle support (the pure class's instances pickle too).
    def __reduce_cython__(self) -> Any: ...
    def __setstate_cython__(self, __pyx_state: Any) -> None: ...
