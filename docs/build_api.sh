#!/usr/bin/env bash
# The API reference, generated from the docstrings by pdoc: HTML in docs/api/ (not committed).
# Needs the docs extra (pip install -e '.[docs]'). Fails, as CI wants, when a module does not
# import and on any warning pdoc gives (an annotation it cannot resolve, a submodule it skips):
# pdoc has no switch for that, so Python's -W error makes every warning an exception.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf docs/api
python -W error -m pdoc --template-directory docs/pdoc --output-directory docs/api fastpool fastpool.aio
echo "API reference: docs/api/index.html"
