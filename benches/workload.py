"""The benchmark workload; it lives in the package (``fastpool.benchmarking.workload``) so
that ``fastpool bench`` can use it too."""

from fastpool.benchmarking.workload import *  # noqa: F403
from fastpool.benchmarking.workload import __all__  # noqa: F401
