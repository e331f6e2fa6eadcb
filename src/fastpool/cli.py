"""The ``fastpool`` command line (SPEC §7); also ``python -m fastpool``.

JSON output is ``fastpool.wire``'s; errors print one line on stderr and exit non-zero,
never a traceback; progress goes to stderr, and only on a terminal. The read commands are
inspection tools: they show every record in the file, also those of a pool that was never
opened (the Rust store appends ``pool_created`` to any pool), which the store's reads hide
(SPEC §5.2), and they stream, so memory stays flat whatever the file's size.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable, Sequence
from contextlib import closing
from pathlib import Path

from . import __version__, wire
from ._compat import USE_EXTENSIONS
from ._env import no_extensions_set
from .errors import AgentError, InvalidInput
from .sqlite import SqliteAgentPoolStore

_FOLLOW_POLL = 0.1  # seconds between checks for new records in watch --follow


def _progress(label: str) -> Callable[[int, int], None] | None:
    if not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        end = "\n" if done >= total else ""
        print(f"\r{label}: {done:,}/{total:,}", end=end, file=sys.stderr, flush=True)

    return show


def _open_existing(path: str) -> SqliteAgentPoolStore:
    """A read-only store on an existing file: the read commands never create or change one."""
    if not Path(path).is_file():
        raise InvalidInput(f"{path}: no such database file")
    return SqliteAgentPoolStore(path, readonly=True)


def _require_records(store: SqliteAgentPoolStore, pool_id: str) -> None:
    """A misspelt pool name fails, instead of printing nothing (or, with --follow, waiting forever)."""
    with closing(store._stream(pool_id)) as records:
        if next(records, None) is None:
            raise InvalidInput(f"{store.path}: no records of pool {pool_id!r}")


def _write_line(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.write("\n")


def _demo(args: argparse.Namespace) -> int:
    from . import demo

    if args.db is None:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "demo.sqlite"
            print(f"fastpool demo on {path} (temporary; pass a path to keep it)")
            demo.run(path, agents=args.agents, messages=args.messages)
    else:
        print(f"fastpool demo on {args.db}")
        demo.run(Path(args.db), agents=args.agents, messages=args.messages)
    return 0


def _inspect(args: argparse.Namespace) -> int:
    with _open_existing(args.db) as store:
        if args.pool is not None:
            _write_line(wire.encode(store.snapshot(args.pool)))
            return 0
        pools = store.pools()
        unopened = store._unopened_pools()
        width = max([len("pool"), *(len(pool_id) for pool_id, _, _ in pools)])
        _write_line(f"{'pool':<{width}}  {'records':>8}  {'cursor':>8}")
        for pool_id, count, last in pools:
            mark = "  never opened" if pool_id in unopened else ""
            _write_line(f"{pool_id:<{width}}  {count:>8}  {last:>8}{mark}")
        _write_line(f"{len(pools)} pool{'' if len(pools) == 1 else 's'}")
    return 0


def _watch(args: argparse.Namespace) -> int:
    with _open_existing(args.db) as store:
        _require_records(store, args.pool)
        after = args.from_
        with closing(store._stream(args.pool, after)) as records:  # closed before the store
            for record in records:
                _write_line(wire.encode(record))
                after = record.cursor.sequence
        if args.follow:
            sys.stdout.flush()
            for record in store._follow(args.pool, after, _FOLLOW_POLL, None, every_record=True):
                _write_line(wire.encode(record))
                sys.stdout.flush()
    return 0


def _export(args: argparse.Namespace) -> int:
    with _open_existing(args.db) as store:
        if args.pool is not None:
            _require_records(store, args.pool)
        pools = [args.pool] if args.pool is not None else [pool_id for pool_id, _, _ in store.pools()]
        for pool_id in pools:
            with closing(store._stream(pool_id)) as records:
                for record in records:
                    _write_line(wire.encode(record))
    return 0


def _verify(args: argparse.Namespace) -> int:
    from .verify import verify

    report = verify(args.db, progress=_progress("verify"))
    for problem in report.problems or ():
        _write_line(str(problem))
    count = len(report.problems or ())
    verdict = "clean" if report.clean else f"{count} problem{'s' if count > 1 else ''}"
    _write_line(f"{report.pools} pools, {report.records} records: {verdict}")
    return 0 if report.clean else 1


def _bench(args: argparse.Namespace) -> int:
    from .benchmarking.runner import main as bench_main

    return bench_main(args)


def _at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number >= ``minimum``, else a usage error (exit 2) naming the argument."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {text!r}")
        return value

    return parse


def _version() -> str:
    if USE_EXTENSIONS:
        engine = "compiled engine: fastpool._replay"
    elif no_extensions_set():
        engine = "pure-Python engine: fastpool._replay_py, forced by FASTPOOL_NO_EXTENSIONS"
    else:
        engine = "pure-Python engine: fastpool._replay_py; the compiled engine is not installed"
    return f"fastpool {__version__} ({engine})"


def build_parser() -> argparse.ArgumentParser:
    # Raw description: argparse would wrap the --version line (it formats it as a description).
    parser = argparse.ArgumentParser(
        prog="fastpool",
        description="A fast, durable SQLite agent-pool store.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=_version(), help="print the version and engine")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    bench = commands.add_parser("bench", help="measure the performance targets side by side with the baseline")
    bench.add_argument("--quick", action="store_true", help="smaller pools and fewer rounds (under a minute)")
    bench.add_argument("--sizes", type=_at_least(0), nargs="+", metavar="N", help="pool sizes (default 0 10000 100000)")
    bench.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    bench.add_argument(
        "--plot", metavar="FILE.png", help="also plot cost per call against pool size (needs matplotlib)"
    )
    bench.set_defaults(handler=_bench)

    demo = commands.add_parser("demo", help="run a realistic agent-host workload on an embedded file")
    demo.add_argument("db", nargs="?", help="database file (default: a temporary file)")
    demo.add_argument("--agents", type=_at_least(1), default=12, help="agent runs that join the pool (default 12)")
    demo.add_argument("--messages", type=_at_least(0), default=600, help="messages to send (default 600)")
    demo.set_defaults(handler=_demo)

    inspect = commands.add_parser("inspect", help="list pools, or print one pool's snapshot as JSON")
    inspect.add_argument("db")
    inspect.add_argument("pool", nargs="?")
    inspect.set_defaults(handler=_inspect)

    watch = commands.add_parser("watch", help="print a pool's records as JSON lines")
    watch.add_argument("db")
    watch.add_argument("pool")
    watch.add_argument("--from", dest="from_", type=_at_least(0), default=0, metavar="N", help="records after N")
    watch.add_argument("--follow", action="store_true", help="keep printing records appended later")
    watch.set_defaults(handler=_watch)

    verify = commands.add_parser("verify", help="check the file and every record; exit 1 if anything is wrong")
    verify.add_argument("db")
    verify.set_defaults(handler=_verify)

    export = commands.add_parser("export", help="print records as JSON lines (pool, cursor, payload)")
    export.add_argument("db")
    export.add_argument("--pool")
    export.set_defaults(handler=_export)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except AgentError as error:
        print(f"fastpool {args.command}: error: {error.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        sys.stderr.close()  # the reader went away (e.g. `| head`): not an error
        return 0
    except OSError as error:
        print(f"fastpool {args.command}: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
