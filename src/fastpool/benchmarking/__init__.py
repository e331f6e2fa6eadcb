"""What ``fastpool bench`` and ``benches/`` share: the workload, the seed baseline, the runner.

Shipped inside the package so that an installed ``fastpool bench`` needs no checkout.
"""
