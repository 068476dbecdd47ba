"""Pub/Sub administration for the launchers: names, reachability, topics, subscriptions, replay points.

Works against Google Cloud or, when ``PUBSUB_EMULATOR_HOST`` is set, the local emulator (the Google
client libraries and Beam's DirectRunner both honour that variable). Every anticipated problem is a
:class:`~touchline.pipelines.options.ConfigError` naming the fix: emulator not running, no
credentials, topic or subscription missing, no permission.
"""

from __future__ import annotations

import os
import re
import socket
from typing import Any

from .options import ConfigError

EMULATOR_ENV = "PUBSUB_EMULATOR_HOST"
TIMEOUT = 15.0
ACK_DEADLINE = 60
_NAME = r"[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}"
_PROJECT = re.compile(r"^[a-z][-a-z0-9:.]{4,61}[a-z0-9]$")  # what Beam's Pub/Sub IO accepts
_PATH = {kind: re.compile(rf"^projects/([^/]+)/{kind}/({_NAME})$") for kind in ("topics", "subscriptions", "snapshots")}


def resource_path(kind: str, name: str, project: str | None, flag: str) -> str:
    """``projects/P/<kind>/NAME`` from a full path, or a short name plus ``--project``."""
    if name.startswith("projects/"):
        match = _PATH[kind].match(name)
        if not match:
            raise ConfigError(f"{flag}={name!r} is not a valid Pub/Sub {kind[:-1]} path",
                              f"use projects/PROJECT/{kind}/NAME (NAME: 3-255 letters, digits, - _ . ~ + %, starting with a letter)")
        project = match.group(1)
        if not _PROJECT.match(project):
            raise ConfigError(f"{flag}={name!r}: {project!r} is not a valid Google Cloud project id",
                              "project ids are 6-63 lower-case letters, digits and hyphens, starting with a letter")
        return name
    if not re.fullmatch(_NAME, name or ""):
        raise ConfigError(f"{flag}={name!r} is not a valid Pub/Sub {kind[:-1]} name",
                          "names are 3-255 letters, digits, - _ . ~ + %, starting with a letter")
    if not project:
        raise ConfigError(f"{flag}={name!r} needs a project", f"pass --project PROJECT or the full path projects/PROJECT/{kind}/{name}")
    return resource_path(kind, f"projects/{project}/{kind}/{name}", None, flag)


def project_of(path: str) -> str:
    return path.split("/")[1]


def emulator_host() -> str | None:
    return os.environ.get(EMULATOR_ENV) or None


def check_reachable() -> None:
    """With the emulator, fail fast (not after a minute of client retries) if nothing listens."""
    host = emulator_host()
    if not host:
        return
    hostname, _, port = host.rpartition(":")
    try:
        with socket.create_connection((hostname or "localhost", int(port)), timeout=3):
            pass
    except (OSError, ValueError):
        raise ConfigError(
            f"cannot reach the Pub/Sub emulator at {host} ({EMULATOR_ENV})",
            f"start it: gcloud beta emulators pubsub start --host-port={host} -- or unset {EMULATOR_ENV} to use Google Cloud",
        ) from None


def _client(kind: str):
    from google.auth.exceptions import DefaultCredentialsError
    from google.cloud import pubsub_v1

    check_reachable()
    try:
        return pubsub_v1.PublisherClient() if kind == "publisher" else pubsub_v1.SubscriberClient()
    except DefaultCredentialsError:
        raise ConfigError(
            "no Google Cloud credentials for Pub/Sub",
            f"run `gcloud auth application-default login`, or set {EMULATOR_ENV}=HOST:PORT to use the emulator",
        ) from None


def publisher():
    return _client("publisher")


def subscriber():
    return _client("subscriber")


def _translate(exc: Exception, what: str, missing_fix: str) -> ConfigError:
    from google.api_core import exceptions as gexc

    if isinstance(exc, gexc.NotFound):
        return ConfigError(f"{what} does not exist", missing_fix)
    if isinstance(exc, gexc.PermissionDenied):
        return ConfigError(f"no permission to use {what}: {exc.message}", "grant the Pub/Sub Editor (or Subscriber/Publisher) role, or check --project")
    if isinstance(exc, (gexc.DeadlineExceeded, gexc.ServiceUnavailable, gexc.RetryError)):
        where = f"the Pub/Sub emulator at {emulator_host()}" if emulator_host() else "Google Cloud Pub/Sub"
        return ConfigError(f"cannot reach {where} to check {what}", "check the network / that the emulator is running")
    return ConfigError(f"cannot use {what}: {exc}", "check the name and your Pub/Sub setup")


def _call(fn, what: str, missing_fix: str, **kwargs) -> Any:
    from google.api_core import exceptions as gexc

    try:
        return fn(**kwargs, timeout=TIMEOUT)
    except gexc.GoogleAPIError as exc:
        raise _translate(exc, what, missing_fix) from None


def check_topic(client, topic: str) -> None:
    _call(client.get_topic, f"Pub/Sub topic {topic}",
          "pass --create to create it (emulator, demos), or create it: gcloud pubsub topics create "
          f"{topic.rsplit('/', 1)[-1]} (or Terraform in deploy/)", request={"topic": topic})


def check_subscription(client, subscription: str) -> dict:
    sub = _call(client.get_subscription, f"Pub/Sub subscription {subscription}",
                "create it with `touchline publish --create --subscription ...` (emulator, demos), "
                f"or: gcloud pubsub subscriptions create {subscription.rsplit('/', 1)[-1]} --topic TOPIC (or Terraform in deploy/)",
                request={"subscription": subscription})
    return {"topic": sub.topic, "ack_deadline_seconds": sub.ack_deadline_seconds}


def ensure_topic(client, topic: str) -> bool:
    """Create the topic if missing; True if created."""
    from google.api_core import exceptions as gexc

    try:
        client.create_topic(request={"name": topic}, timeout=TIMEOUT)
        return True
    except gexc.AlreadyExists:
        return False
    except gexc.GoogleAPIError as exc:
        raise _translate(exc, f"Pub/Sub topic {topic}", "check --project and your permissions") from None


def ensure_subscription(client, subscription: str, topic: str) -> bool:
    """Create a pull subscription if missing (60 s ack deadline); True if created."""
    from google.api_core import exceptions as gexc

    try:
        client.create_subscription(
            request={"name": subscription, "topic": topic, "ack_deadline_seconds": ACK_DEADLINE}, timeout=TIMEOUT
        )
        return True
    except gexc.AlreadyExists:
        current = check_subscription(client, subscription)
        if current["topic"] != topic:
            raise ConfigError(f"subscription {subscription} already exists on topic {current['topic']}, not {topic}",
                              "use another subscription name, or the topic it is attached to") from None
        return False
    except gexc.GoogleAPIError as exc:
        raise _translate(exc, f"Pub/Sub subscription {subscription}", "create the topic first (--create does both)") from None


# -- replay points --------------------------------------------------------------------------------
def replay_snapshot(subscription: str) -> str:
    """The snapshot that marks where a local stream on ``subscription`` resumes after a restart."""
    project, name = subscription.split("/")[1], subscription.rsplit("/", 1)[-1]
    return f"projects/{project}/snapshots/{name[:230]}-touchline-replay"


def replay_point(client, subscription: str, reset: bool = False) -> str:
    """Make a restart of a local stream lose nothing (see docs/streaming.md, "Stopping and restarting").

    If the subscription's replay snapshot exists (and ``reset`` is false), seek the subscription
    back to it: every message delivered since it was taken -- including messages a stopped
    local run acknowledged but had not written yet -- is delivered again, and the warehouse merges
    the repeats by key. Otherwise take the snapshot now. Returns a line for the log."""
    from google.api_core import exceptions as gexc

    snapshot = replay_snapshot(subscription)
    if reset:
        try:
            client.delete_snapshot(request={"snapshot": snapshot}, timeout=TIMEOUT)
        except gexc.NotFound:
            pass
    else:
        try:
            client.seek(request={"subscription": subscription, "snapshot": snapshot}, timeout=TIMEOUT)
            return f"replaying {subscription} from its replay point ({snapshot}); pass --reset_replay_point to skip the replay"
        except gexc.NotFound:
            pass
        except gexc.GoogleAPIError as exc:
            raise _translate(exc, f"Pub/Sub snapshot {snapshot}", "pass --replay_on_restart=off to start without a replay point") from None
    try:
        client.create_snapshot(request={"name": snapshot, "subscription": subscription}, timeout=TIMEOUT)
    except gexc.GoogleAPIError as exc:
        raise _translate(exc, f"Pub/Sub snapshot {snapshot}", "pass --replay_on_restart=off to start without a replay point") from None
    return f"took replay point {snapshot}: a restart of this stream replays from here"
