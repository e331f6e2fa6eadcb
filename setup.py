"""Declares the Cython extension ``fastpool._replay`` and nothing else (metadata: pyproject.toml).

FASTPOOL_NO_EXTENSIONS (any non-empty value) skips the build; FASTPOOL_REQUIRE_EXTENSIONS
makes a failed build fatal instead of falling back to the pure-Python twin.
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


class OptionalBuildExt(build_ext):
    """Falls back to the pure twin, loudly, when the compile fails (unless it is required)."""

    def run(self):
        try:
            super().run()
        except Exception as error:
            self._fallback(error)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as error:
            self._fallback(error)

    def _fallback(self, error):
        if REQUIRE_EXTENSIONS:
            raise
        print(f"{BANNER}\nfastpool: the C extension could not be built ({error});\n"
              f"installing the pure-Python engine instead (slower, same results).\n{BANNER}", file=sys.stderr)


def extensions():
    if NO_EXTENSIONS:
        print(f"{BANNER}\nfastpool: FASTPOOL_NO_EXTENSIONS is set; installing the pure-Python engine.\n{BANNER}",
              file=sys.stderr)
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        if REQUIRE_EXTENSIONS:
            raise
        return []
    ext = Extension("fastpool._replay", ["src/fastpool/_replay.pyx"], optional=not REQUIRE_EXTENSIONS)
    return cythonize([ext], compiler_directives={"language_level": "3", "boundscheck": False, "wraparound": False})


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
