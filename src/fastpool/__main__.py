"""``python -m fastpool``: the command line."""

import sys

from .cli import main

if __name__ == "__main__":  # not when multiprocessing's spawn re-imports the main module
    sys.exit(main())
