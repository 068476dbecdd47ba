"""``touchline publish``: replay channel files into a Pub/Sub topic, for demos, tests and load tests.

    touchline publish --input data/sample --topic projects/P/topics/touchline-events \\
                      [--create --subscription projects/P/subscriptions/touchline-events] \\
                      [--rate 500] [--shuffle_window 100] [--duplicate_rate 0.01] [--seed 7]

Reads the generator's layout (``ROOT/<channel>/*.avro|jsonl``, malformed lines included) with the
batch pipeline's own readers and publishes one message per record in Touchline's wire format
(:mod:`touchline.transforms.pubsub`): the raw line bytes for JSONL, the record's JSON text for Avro,
attributes ``channel`` and ``event_time`` (from the record's timestamp, or the publish time when it
has none, so a malformed record still reaches the dead letters). Records go out in event-time order
(``--order time``, default; ``file`` keeps file order and streams without loading everything),
optionally displaced by up to ``--shuffle_window`` positions (bounded out-of-order arrival) and with
``--duplicate_rate`` of them published twice (a producer retry: a new message, same content).
``--retime`` shifts all event times so the data plays as if it happened now (for live demos: the
local runner's watermark is the wall clock, so old sample data would otherwise be ``too_late``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import random
import time
from collections import Counter
from typing import Callable, Iterable, Iterator

from touchline.transforms import channels as channel_registry
from touchline.transforms import sources
from touchline.transforms.pubsub import EVENT_TIME_ATTRIBUTE, encode_message

from . import pubsub_admin
from .options import ConfigError, _matched_files


@dataclasses.dataclass
class PublishReport:
    topic: str
    published: int = 0
    duplicates: int = 0
    per_channel: Counter = dataclasses.field(default_factory=Counter)
    seconds: float = 0.0
    created: list[str] = dataclasses.field(default_factory=list)
    #: (channel, file position) of every record published twice
    duplicated: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    @property
    def rate(self) -> float:
        return (self.published + self.duplicates) / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        chans = ", ".join(f"{c} {n}" for c, n in sorted(self.per_channel.items()))
        dup = f" + {self.duplicates} duplicates" if self.duplicates else ""
        return (f"published {self.published} messages ({chans}){dup} to {self.topic} "
                f"in {self.seconds:.1f} s ({self.rate:.0f} msg/s)")


@dataclasses.dataclass
class Message:
    channel: str
    source: str  # position in the input files (path@offset)
    data: bytes
    attributes: dict[str, str]
    order: float = 0.0


def _records(files: dict[str, list[str]]) -> Iterator[Message]:
    for channel, paths in files.items():
        for path in paths:
            last_time = 0.0
            for record in sources.read_range((path, 0, sources._UNBOUNDED)):
                data, attributes = encode_message(channel, record, now_millis=0)
                millis = int(attributes[EVENT_TIME_ATTRIBUTE])
                if millis:  # a malformed record without a time stays next to its neighbour
                    last_time = millis
                yield Message(channel, record[0], data, attributes, order=last_time)


def _iso_millis(millis: int) -> str:
    return dt.datetime.fromtimestamp(millis / 1000, dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def retime(message: Message, shift_millis: int) -> Message:
    """The message with its event time moved by ``shift_millis`` (payload and attribute). Records
    without a parseable time (or that are not JSON objects) are left as they are."""
    if message.attributes.get(EVENT_TIME_ATTRIBUTE, "0") == "0":
        return message
    try:
        datum = json.loads(message.data)
    except ValueError:
        return message
    field = channel_registry.get(message.channel).timestamp_field
    if not isinstance(datum, dict) or not isinstance(datum.get(field), str):
        return message
    millis = int(message.attributes[EVENT_TIME_ATTRIBUTE]) + shift_millis
    datum[field] = _iso_millis(millis)
    attributes = {**message.attributes, EVENT_TIME_ATTRIBUTE: str(millis)}
    return dataclasses.replace(message, data=json.dumps(datum, ensure_ascii=False).encode("utf-8"), attributes=attributes,
                               order=message.order + shift_millis)


def plan_messages(files: dict[str, list[str]], order: str = "time", shuffle_window: int = 0,
                  duplicate_rate: float = 0.0, seed: int = 7, retime_to: int | None = None) -> Iterable[tuple[Message, bool]]:
    """``(message, is_duplicate)`` in publishing order. Deterministic for a seed.

    ``retime_to`` (ms since epoch, ``order="time"`` only) shifts every event time so the newest
    event happens then: replaying old sample data as if it were live."""
    rng = random.Random(seed)
    messages: Iterable[Message] = _records(files)
    if order == "time":
        messages = sorted(messages, key=lambda m: m.order)  # stable: file order among equal times
        if retime_to is not None and messages:
            shift = retime_to - int(messages[-1].order)
            messages = [retime(m, shift) for m in messages]
    if not shuffle_window and not duplicate_rate:
        return ((m, False) for m in messages)
    # Bounded shuffle: sort by position + U(0, window): no message moves more than `window` places.
    # A duplicate goes out up to max(window, 10) places after its original.
    spread = max(shuffle_window, 10)
    keyed = []
    for i, m in enumerate(messages):
        keyed.append((i + rng.uniform(0, shuffle_window), m, False))
        if duplicate_rate and rng.random() < duplicate_rate:
            keyed.append((i + rng.uniform(1, spread), m, True))
    keyed.sort(key=lambda k: k[0])
    return ((m, dup) for _, m, dup in keyed)


def publish(
    input_root: str | None,
    topic: str,
    *,
    channel_inputs: dict[str, list[str]] | None = None,
    channels: list[str] | None = None,
    rate: float = 0.0,
    order: str = "time",
    shuffle_window: int = 0,
    duplicate_rate: float = 0.0,
    seed: int = 7,
    create: bool = False,
    subscription: str | None = None,
    limit: int | None = None,
    retime_live: bool = False,
    on_published: Callable[[Message, float], None] | None = None,
) -> PublishReport:
    """Publish channel files to ``topic`` (a full path). Raises ConfigError for anything a person can fix."""
    if rate < 0:
        raise ConfigError(f"--rate must be >= 0, got {rate}", "use e.g. --rate 200 (messages/s), or 0 for as fast as possible")
    if shuffle_window < 0:
        raise ConfigError(f"--shuffle_window must be >= 0, got {shuffle_window}", "use e.g. --shuffle_window 100")
    if not 0 <= duplicate_rate <= 1:
        raise ConfigError(f"--duplicate_rate must be between 0 and 1, got {duplicate_rate}", "use e.g. --duplicate_rate 0.01")
    if order not in ("time", "file"):
        raise ConfigError(f"--order must be time or file, got {order!r}", "use --order time (event-time order) or --order file")
    if retime_live and order != "time":
        raise ConfigError("--retime needs --order time", "drop --order file (retiming sorts the records by event time)")
    names = channel_registry.names()
    selected = channels or names
    for name in selected:
        if name not in names:
            raise ConfigError(f"unknown channel {name!r}", f"use a comma-separated subset of: {', '.join(names)}")
    patterns = dict(channel_inputs or {})
    if input_root:
        for name, pattern in sources.inputs_under_root(input_root, selected, named_explicitly=bool(channels)).items():
            patterns.setdefault(name, [pattern])
    if not patterns:
        raise ConfigError("no input given", "pass --input DIR (one sub-folder per channel, as `touchline generate` writes)")
    files = {channel: [path for path, _size, _mtime in found] for channel, found in _matched_files(patterns).items()}

    client = pubsub_admin.publisher()
    report = PublishReport(topic=topic)
    if create:
        if pubsub_admin.ensure_topic(client, topic):
            report.created.append(topic)
        if subscription:
            if pubsub_admin.ensure_subscription(pubsub_admin.subscriber(), subscription, topic):
                report.created.append(subscription)
    else:
        pubsub_admin.check_topic(client, topic)
        if subscription:
            pubsub_admin.check_subscription(pubsub_admin.subscriber(), subscription)

    from google.cloud import pubsub_v1
    from google.cloud.pubsub_v1.types import LimitExceededBehavior, PublishFlowControl

    flow = pubsub_v1.PublisherClient(  # batching + bounded memory for the bulk publish
        batch_settings=pubsub_v1.types.BatchSettings(max_messages=100, max_latency=0.01),
        publisher_options=pubsub_v1.types.PublisherOptions(
            flow_control=PublishFlowControl(message_limit=2000, limit_exceeded_behavior=LimitExceededBehavior.BLOCK)
        ),
    )
    futures = []
    started = time.monotonic()
    sent = 0
    try:
        # Retimed, the newest event happens when the last message goes out at the requested rate.
        total = sum(1 for _ in plan_messages(files, "file")) if retime_live else 0
        retime_to = int((time.time() + (total / rate if rate else 0)) * 1000) if retime_live else None
        for message, duplicate in plan_messages(files, order, shuffle_window, duplicate_rate, seed, retime_to):
            if limit is not None and report.published >= limit and not duplicate:
                break
            if rate:
                wait = started + sent / rate - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
            attributes = dict(message.attributes)
            if attributes[EVENT_TIME_ATTRIBUTE] == "0":  # no usable event time: the publish time
                attributes[EVENT_TIME_ATTRIBUTE] = str(int(time.time() * 1000))
            now = time.time()
            futures.append(flow.publish(topic, message.data, **attributes))
            sent += 1
            if duplicate:
                report.duplicates += 1
                report.duplicated.append((message.channel, message.source))
            else:
                report.published += 1
                report.per_channel[message.channel] += 1
            if on_published is not None:
                on_published(message, now)
        failures = []
        for future in futures:
            try:
                future.result(timeout=60)
            except Exception as exc:  # noqa: BLE001 -- reported below with a fix
                failures.append(exc)
        if failures:
            raise ConfigError(f"{len(failures)} of {len(futures)} messages could not be published: {failures[0]}",
                              "check the topic and that the emulator / Pub/Sub is reachable, then publish again")
    finally:
        flow.stop()
    report.seconds = time.monotonic() - started
    return report
