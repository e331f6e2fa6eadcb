"""T12, PostgreSQL side by side with its raw limits, in one run: ``fastpool bench --db``'s table.

    python benches/bench_postgres.py [--db postgresql://…] [--server default|nofsync] [--quick]

Without ``--db`` it starts a throwaway cluster (tests/pg_server.py): ``default`` keeps the
server's durability defaults (fsync on, synchronous_commit on), ``nofsync`` is the test
suite's cluster (fsync off), which shows the CPU and round-trip costs alone. The rows and
their verdicts are ``fastpool.benchmarking.postgres``'s and ``targets``'.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from pg_server import TEST_SETTINGS, PostgresServer, find_bindir  # noqa: E402

from fastpool.benchmarking.runner import Progress, format_table, machine, postgres_results  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="a PostgreSQL URL (default: start a throwaway cluster)")
    parser.add_argument("--server", choices=["default", "nofsync"], default="default")
    parser.add_argument("--quick", action="store_true", help="fewer calls per timed run")
    args = parser.parse_args()
    server = None
    conninfo = args.db
    if conninfo is None:
        bindir = find_bindir()
        if bindir is None:
            sys.exit("no PostgreSQL server binaries: pass --db")
        server = PostgresServer(bindir, {} if args.server == "default" else TEST_SETTINGS).start()
        conninfo = server.conninfo
    try:
        version, results = postgres_results(conninfo, args.quick, Progress())
    finally:
        if server is not None:
            server.destroy()
    where = f"a throwaway cluster, {args.server} settings" if args.db is None else "--db"
    print(f"{version} ({where}) on {machine()}")
    print(format_table(results, ()))


if __name__ == "__main__":
    main()
