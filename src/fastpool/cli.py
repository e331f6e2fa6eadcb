"""The ``fastpool`` command line (SPEC §7); also ``python -m fastpool``.

Errors print one line on stderr and exit non-zero, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .errors import AgentError


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastpool", description="A fast, durable SQLite agent-pool store.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="run a realistic agent-host workload on an embedded file")
    demo.add_argument("db", nargs="?", help="database file (default: a temporary file)")
    demo.add_argument("--agents", type=int, default=12, help="agent runs that join the pool (default 12)")
    demo.add_argument("--messages", type=int, default=600, help="messages to send (default 600)")
    demo.set_defaults(handler=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except AgentError as error:
        print(f"fastpool {args.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except OSError as error:
        print(f"fastpool {args.command}: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
