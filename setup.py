"""Declares the compiled engine's extensions and nothing else (metadata: pyproject.toml).

``fastpool._replay`` is ``src/fastpool/_replay.pyx`` with the parts it includes;
``fastpool._pool_state_c`` is ``src/fastpool/_pool_state.py``, the pure engine's pool state,
compiled. Their Cython directives are in the sources. FASTPOOL_NO_EXTENSIONS (any non-empty
value) skips the build. Otherwise one mechanism handles every failure (no Cython, no compiler,
a compile error):
``OptionalBuildExt.run`` installs the pure-Python engine instead and says so, unless
FASTPOOL_REQUIRE_EXTENSIONS makes the failure fatal.
"""

import os
import runpy
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

_env = runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "src", "fastpool", "_env.py"))
NO_EXTENSIONS = _env["extensions_disabled"]()
REQUIRE_EXTENSIONS = _env["extensions_required"]()
BANNER = "*" * 72
SRC = "src/fastpool/"
# The C header, the included parts and the pool state's declarations: a change to any rebuilds _replay.
PARTS = ["_replay.h", "_plans.pxi", "_writer.pxi", "_reader.pxi", "_pool_state_c.pxd"]


class OptionalBuildExt(build_ext):
    """Builds with warnings on; falls back to the pure-Python engine, loudly, when that fails.

    setuptools' build_ext is Cython's when Cython is installed, so the .pyx is translated here
    too, and a missing Cython fails here like a missing compiler.
    """

    def run(self):
        try:
            super().run()
        except Exception as error:
            if REQUIRE_EXTENSIONS:
                raise
            print(f"{BANNER}\nfastpool: the compiled engine could not be built ({error});\n"
                  f"installing the pure-Python engine instead (slower, same results).\n{BANNER}", file=sys.stderr)

    def build_extension(self, ext):
        if self.compiler.compiler_type == "unix":  # gcc and clang both take these flags
            ext.extra_compile_args = [*ext.extra_compile_args, "-Wall", "-Wextra"]
        super().build_extension(ext)


def extensions():
    if NO_EXTENSIONS:
        print(f"{BANNER}\nfastpool: FASTPOOL_NO_EXTENSIONS is set; installing the pure-Python engine.\n{BANNER}",
              file=sys.stderr)
        return []
    return [
        Extension("fastpool._replay", [SRC + "_replay.pyx"], depends=[SRC + part for part in PARTS]),
        # The pool state: the pure engine's own _pool_state.py, compiled as it is under another
        # name (so that FASTPOOL_NO_EXTENSIONS still imports the .py), with _pool_state_c.pxd's types.
        Extension("fastpool._pool_state_c", [SRC + "_pool_state.py"], depends=[SRC + "_pool_state_c.pxd"]),
    ]


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
