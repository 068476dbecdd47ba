"""Real local servers the integration tests run against, started by the test suite itself.

BigQuery: the ``bqemulator`` package (DuckDB-backed REST + Storage Read gRPC), installed by the
project's ``test`` extra. Its DuckDB needs the ``spatial`` extension at startup (and ``avro`` to load
Avro files) and would download them; offline, they are installed once from the
``duckdb-extension-spatial`` / ``duckdb-extension-avro`` wheels into a DuckDB home inside the virtual
environment, and the emulator runs with that home. It listens on free loopback ports, is polled
until ready, and is stopped after the session; its log is printed when it fails to start or when
tests failed.
"""

from __future__ import annotations

import fcntl
import glob
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

PROJECT = "test-proj"
STARTUP_SECONDS = 90
_EXTENSIONS = ("duckdb_extension_spatial", "duckdb_extension_avro")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def duckdb_home() -> Path:
    """A HOME whose ``.duckdb/extensions`` holds the extensions shipped in wheels (installed once
    per virtual environment; a fresh environment installs them again)."""
    import duckdb

    home = Path(sys.prefix) / "var" / "touchline-duckdb-home"
    folder = home / ".duckdb" / "extensions"
    wanted = []
    for package in _EXTENSIONS:
        module = __import__(package)
        files = glob.glob(os.path.join(os.path.dirname(module.__file__), "extensions", "*", "*.duckdb_extension"))
        if not files:
            raise RuntimeError(f"{package} ships no .duckdb_extension file; reinstall the test extra: pip install -e '.[test]'")
        wanted.append(files[0])
    folder.mkdir(parents=True, exist_ok=True)
    with open(home / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel test workers install once
        missing = [f for f in wanted if not glob.glob(str(folder / "*" / "*" / os.path.basename(f)))]
        if missing:
            con = duckdb.connect(config={"extension_directory": str(folder)})
            try:
                for path in missing:
                    con.execute(f"INSTALL '{path}'")
            finally:
                con.close()
    return home


class BigQueryEmulator:
    """A running ``bqemulator``: REST at :attr:`endpoint`, Storage Read gRPC at :attr:`storage_endpoint`."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.rest_port = free_port()
        self.grpc_port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.rest_port}"
        self.storage_endpoint = f"127.0.0.1:{self.grpc_port}"
        self.log_path = workdir / "bqemulator.log"
        self._proc: subprocess.Popen | None = None

    def start(self) -> "BigQueryEmulator":
        env = {**os.environ, "HOME": str(duckdb_home()), "BQEMU_LOG_FORMAT": "console", "BQEMU_LOG_LEVEL": "warning"}
        cmd = [sys.executable, "-m", "bqemulator", "start", "--rest-host", "127.0.0.1", "--rest-port", str(self.rest_port),
               "--grpc-host", "127.0.0.1", "--grpc-port", str(self.grpc_port), "--project", PROJECT, "--ephemeral"]
        self._log = open(self.log_path, "wb")
        self._proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, cwd=self.workdir, env=env)
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"bqemulator exited with {self._proc.returncode} at startup:\n{self.log_tail()}")
            if self._ready():
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"bqemulator not ready after {STARTUP_SECONDS} s:\n{self.log_tail()}")

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.endpoint}/healthz", timeout=1) as resp:
                if resp.status != 200:
                    return False
            with socket.create_connection(("127.0.0.1", self.grpc_port), timeout=1):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)
        self._proc = None
        if getattr(self, "_log", None):
            self._log.close()

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(text[-lines:])

    # -- helpers for tests -----------------------------------------------------------------------
    def url(self, dataset: str) -> str:
        return f"bigquery://{PROJECT}.{dataset}?endpoint={self.endpoint}&storage_endpoint={self.storage_endpoint}"

    def client(self):
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import bigquery

        return bigquery.Client(project=PROJECT, credentials=AnonymousCredentials(), client_options={"api_endpoint": self.endpoint})


def new_dataset(prefix: str = "t") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def bigquery_emulator(request, tmp_path_factory):
    """The BigQuery API emulator, started once per test session on free loopback ports."""
    emulator = BigQueryEmulator(tmp_path_factory.mktemp("bqemulator")).start()
    failed_before = request.session.testsfailed
    yield emulator
    emulator.stop()
    if request.session.testsfailed > failed_before:
        sys.stderr.write(f"\n--- bqemulator log (last lines) ---\n{emulator.log_tail()}\n")
