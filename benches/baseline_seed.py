"""The seed-algorithm baseline for target T7: an honest Python port of the Rust store.

The code lives in the package, ``fastpool/benchmarking/seed_baseline.py``, so that an
installed ``fastpool bench`` can run it side by side with fastpool.
"""

from fastpool.benchmarking.seed_baseline import SeedAgentPoolStore

__all__ = ["SeedAgentPoolStore"]
