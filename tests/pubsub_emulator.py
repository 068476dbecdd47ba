"""The real Google Cloud Pub/Sub emulator for tests: found, started on a free loopback port, stopped.

Tests ask for the session fixture ``pubsub_emulator`` (registered in ``tests/conftest.py``, so one
emulator serves the whole session) and use ``emulator_env`` to point the Google client libraries and
Beam at it (``PUBSUB_EMULATOR_HOST``); ``start_emulator``/``stop_emulator`` serve benchmarks. The emulator ships with the
Google Cloud CLI as the package ``google-cloud-cli-pubsub-emulator`` and needs Java; if it is not
installed the tests that need it fail with a message saying how to install it (they never skip:
a missing emulator must not look like a green run).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass

import pytest

INSTALL_HINT = (
    "install the Pub/Sub emulator: `sudo apt-get install google-cloud-cli-pubsub-emulator` (Debian/Ubuntu, "
    "with Google's apt repository) or `gcloud components install pubsub-emulator`; it needs Java 8+ on PATH. "
    "Or point TOUCHLINE_PUBSUB_EMULATOR at the cloud-pubsub-emulator script."
)
STARTUP_TIMEOUT = 90.0
PROJECT = "touchline-test"


def _sdk_roots() -> list[str]:
    roots = []
    gcloud = shutil.which("gcloud")
    if gcloud:
        try:
            out = subprocess.run([gcloud, "info", "--format=value(installation.sdk_root)"], capture_output=True,
                                 text=True, timeout=60, check=False).stdout.strip()
            if out:
                roots.append(out)
        except (OSError, subprocess.SubprocessError):
            pass
        roots.append(os.path.dirname(os.path.dirname(os.path.realpath(gcloud))))
    roots += ["/usr/lib/google-cloud-sdk", "/usr/share/google-cloud-sdk", os.path.expanduser("~/google-cloud-sdk")]
    return roots


class EmulatorMissing(RuntimeError):
    """The emulator (or Java) is not installed; the message says how to install it."""


def find_emulator() -> list[str]:
    """The command that starts the emulator (before ``--host``/``--port``); EmulatorMissing if absent."""
    explicit = os.environ.get("TOUCHLINE_PUBSUB_EMULATOR")
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise EmulatorMissing(f"TOUCHLINE_PUBSUB_EMULATOR={explicit} is not an executable file; {INSTALL_HINT}")
        return [explicit]
    for root in _sdk_roots():
        script = os.path.join(root, "platform", "pubsub-emulator", "bin", "cloud-pubsub-emulator")
        if os.access(script, os.X_OK):
            if not shutil.which("java"):
                raise EmulatorMissing(f"the Pub/Sub emulator at {script} needs Java, and no `java` is on PATH; "
                                      "install a JRE (e.g. `apt-get install default-jre-headless`)")
            return [script]
    raise EmulatorMissing(f"the Google Cloud Pub/Sub emulator is not installed (looked under "
                          f"{', '.join(dict.fromkeys(_sdk_roots()))}); {INSTALL_HINT}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


@dataclass
class PubSubEmulator:
    host: str
    process: subprocess.Popen
    log_path: str
    project: str = PROJECT

    def log_tail(self, lines: int = 40) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as fh:
                return "".join(fh.readlines()[-lines:])
        except OSError:
            return "(no emulator log)"

    def topic(self, name: str) -> str:
        return f"projects/{self.project}/topics/{name}"

    def subscription(self, name: str) -> str:
        return f"projects/{self.project}/subscriptions/{name}"

    def alive(self) -> bool:
        return self.process.poll() is None


def start_emulator(log_dir: str) -> PubSubEmulator:
    """Start the emulator on 127.0.0.1:<free port> and wait until it listens (RuntimeError with its log if not)."""
    command = find_emulator()
    port = free_port()
    log_path = os.path.join(log_dir, "pubsub-emulator.log")
    with open(log_path, "wb") as log:
        # Own process group: the launcher script starts a JVM, and both must go at the end.
        process = subprocess.Popen([*command, "--host=127.0.0.1", f"--port={port}"], stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    emulator = PubSubEmulator(host=f"127.0.0.1:{port}", process=process, log_path=log_path)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not _listening(port):
        if process.poll() is not None:
            raise RuntimeError(f"the Pub/Sub emulator exited with status {process.returncode} while starting:\n{emulator.log_tail()}")
        if time.monotonic() > deadline:
            stop_emulator(emulator)
            raise RuntimeError(f"the Pub/Sub emulator did not listen on port {port} within {STARTUP_TIMEOUT:.0f} s:\n"
                               f"{emulator.log_tail()}")
        time.sleep(0.2)
    return emulator


def stop_emulator(emulator: PubSubEmulator) -> None:
    process = emulator.process
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=15)


@pytest.fixture(scope="session")
def pubsub_emulator(tmp_path_factory):
    """A running emulator on 127.0.0.1:<free port>, for the whole test session."""
    try:
        emulator = start_emulator(str(tmp_path_factory.mktemp("pubsub-emulator")))
    except (EmulatorMissing, RuntimeError) as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield emulator
        if not emulator.alive():
            print(f"\nthe Pub/Sub emulator died during the tests (status {emulator.process.returncode}):\n{emulator.log_tail()}")
    finally:
        stop_emulator(emulator)


@contextlib.contextmanager
def emulator_env(emulator: PubSubEmulator):
    """Point the Google clients (and Beam's DirectRunner) at the emulator while inside."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PUBSUB_EMULATOR_HOST", emulator.host)
        mp.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
        yield emulator


def pull_all(emulator: PubSubEmulator, subscription: str, idle: float = 2.0) -> list:
    """Pull (and ack) everything currently on a subscription; returns the received messages."""
    from google.cloud import pubsub_v1

    with emulator_env(emulator):
        client = pubsub_v1.SubscriberClient()
        got = []
        try:
            while True:
                resp = client.pull(request={"subscription": subscription, "max_messages": 500}, timeout=idle)
                if not resp.received_messages:
                    break
                got += [m.message for m in resp.received_messages]
                client.acknowledge(request={"subscription": subscription, "ack_ids": [m.ack_id for m in resp.received_messages]})
        except Exception as exc:  # noqa: BLE001 -- DeadlineExceeded: nothing more to pull
            if "Deadline" not in type(exc).__name__ and "504" not in str(exc):
                raise
        finally:
            client.close()
        return got
