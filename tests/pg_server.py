"""A throwaway PostgreSQL cluster for the tests (and benchmarks): initdb, start, stop, rmtree.

The server binaries come from ``pg_config --bindir`` (Debian keeps ``initdb`` and ``pg_ctl``
in its versioned directory, not on PATH). initdb refuses to run as root, so as root the
cluster belongs to the ``postgres`` user (``runuser``). The server listens on 127.0.0.1 on a
free port, with its unix socket inside the temporary directory, trust authentication.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

#: Where the ``postgres`` Debian package puts initdb and pg_ctl when pg_config is missing.
_DEBIAN_BINDIR = Path("/usr/lib/postgresql/15/bin")

# Durability costs nothing to the tests' meaning (no test crashes the machine, and an
# immediate stop keeps the OS page cache), so the test cluster skips fsync.
TEST_SETTINGS = {"fsync": "off", "full_page_writes": "off", "max_connections": "100"}


def find_bindir() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``, or None when no server is installed."""
    candidates = []
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        result = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if result.returncode == 0:
            candidates.append(Path(result.stdout.strip()))
    candidates.append(_DEBIAN_BINDIR)
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return bindir
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PostgresServer:
    """One cluster in a temporary directory; ``conninfo`` reaches it over TCP on 127.0.0.1."""

    def __init__(self, bindir: Path, settings: dict[str, str] | None = None) -> None:
        self.bindir = bindir
        self.settings = dict(TEST_SETTINGS if settings is None else settings)
        self.root = Path(tempfile.mkdtemp(prefix="fastpool-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = 0
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")

    @property
    def conninfo(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *argv: str) -> None:
        command = [str(self.bindir / argv[0]), *argv[1:]]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr}\n{log}")

    def start(self) -> PostgresServer:
        """initdb (once) and start the server on a free port."""
        if not self.data.exists():
            self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        for attempt in range(3):  # a free port may be taken between the probe and the bind
            self.port = _free_port()
            try:
                self._pg_ctl_start()
                break
            except RuntimeError:
                if attempt == 2:
                    raise
        return self

    def _pg_ctl_start(self) -> None:
        options = " ".join(
            [f"-p {self.port}", f"-k {self.root}", "-c listen_addresses=127.0.0.1"]
            + [f"-c {name}={value}" for name, value in self.settings.items()]
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "30", "start")

    def stop(self, mode: str = "immediate") -> None:
        """Stop the server (the data directory stays: ``start`` brings it back on the same port)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self) -> None:
        """A crash-like stop (``immediate``) and a start on the same port: clients see dropped connections."""
        self.stop("immediate")
        self._pg_ctl_start()

    def destroy(self) -> None:
        """Stop the server if it runs and remove every file it had."""
        try:
            if (self.data / "postmaster.pid").exists():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
