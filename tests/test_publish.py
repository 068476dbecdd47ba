"""`touchline publish`: generated files -> Pub/Sub messages in Touchline's wire format (real emulator)."""

import collections
import json

import pytest

from touchline.pipelines import cli
from touchline.pipelines.options import ConfigError
from touchline.pipelines.publish import plan_messages, publish
from touchline.pipelines.sample_data import GenerateConfig, generate
from touchline.transforms import sources
from touchline.transforms.pubsub import decode_message

from .pubsub_emulator import emulator_env, free_port, pull_all


@pytest.fixture(scope="module")
def small_sample(tmp_path_factory):
    out = tmp_path_factory.mktemp("pub-sample")
    generate(GenerateConfig(out_dir=str(out), persons=25, days=2, seed=5, malformed_rate=0.1))
    with open(out / "truth" / "records.jsonl", encoding="utf-8") as fh:
        truth = [json.loads(line) for line in fh]
    return str(out), truth


def files_of(root):
    return {c: [f"{root}/{c}/{name}" for name in sorted(__import__("os").listdir(f"{root}/{c}"))] for c in ("app", "web", "support", "transactions")}


def test_every_record_becomes_one_message_with_channel_and_event_time(small_sample, pubsub_emulator):
    root, truth = small_sample
    topic, sub = pubsub_emulator.topic("pub-all"), pubsub_emulator.subscription("pub-all")
    with emulator_env(pubsub_emulator):
        report = publish(root, topic, create=True, subscription=sub)
    assert report.created == [topic, sub]
    messages = pull_all(pubsub_emulator, sub)
    # one message per input unit of the generator (a corrupt Avro block is one unit, like in batch)
    assert len(messages) == report.published == len(truth)
    by_channel = collections.Counter(m.attributes["channel"] for m in messages)
    assert dict(by_channel) == dict(collections.Counter(r["channel"] for r in truth)) == dict(report.per_channel)
    assert all(int(m.attributes["event_time"]) > 1_700_000_000_000 for m in messages)
    # JSONL lines travel byte for byte (malformed ones too); Avro records as JSON; unreadable blocks flagged
    raw_lines = {line for c in ("web", "support") for f in files_of(root)[c] for _, line, _ in sources.read_range((f, 0, 1 << 62))}
    jsonl = [m.data for m in messages if m.attributes["channel"] in ("web", "support")]
    assert set(jsonl) == raw_lines
    avro = [m for m in messages if m.attributes["channel"] in ("app", "transactions")]
    flagged = [m for m in avro if "read_error" in m.attributes]
    assert [m.attributes["read_error"] for m in flagged] == ["corrupt_avro"] * len(flagged) and flagged
    assert all(isinstance(json.loads(m.data), dict) for m in avro if "read_error" not in m.attributes)
    # the stream's decoder turns them back into the batch readers' records
    channel, (source, payload, error), _ = decode_message(flagged[0], sub)
    assert channel == flagged[0].attributes["channel"] and error[0] == "corrupt_avro" and source.startswith(f"pubsub:{sub}/")


def test_event_time_order_shuffle_bound_and_duplicates_are_deterministic(small_sample):
    root, _ = small_sample
    files = files_of(root)
    plain = [m for m, _ in plan_messages(files)]
    times = [m.order for m in plain]
    assert times == sorted(times)
    window = 7
    shuffled = list(plan_messages(files, shuffle_window=window, duplicate_rate=0.2, seed=3))
    assert shuffled == list(plan_messages(files, shuffle_window=window, duplicate_rate=0.2, seed=3))
    originals = [m for m, dup in shuffled if not dup]
    assert sorted(m.source for m in originals) == sorted(m.source for m in plain) and originals != plain
    position = {m.source: i for i, m in enumerate(plain)}
    assert max(abs(position[m.source] - i) for i, m in enumerate(originals)) <= window
    dups = [m for m, dup in shuffled if dup]
    assert 0.1 * len(plain) < len(dups) < 0.3 * len(plain)


def test_missing_topic_names_the_fix(small_sample, pubsub_emulator):
    root, _ = small_sample
    with emulator_env(pubsub_emulator), pytest.raises(ConfigError, match="does not exist") as err:
        publish(root, pubsub_emulator.topic("never-created"))
    assert "--create" in err.value.fix


def test_unreachable_emulator_names_the_fix(small_sample, monkeypatch, capsys):
    root, _ = small_sample
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", f"127.0.0.1:{free_port()}")
    assert cli.main(["publish", "--input", root, "--topic", "projects/touchline-test/topics/touchline-events"]) == 2
    err = capsys.readouterr().err
    assert "cannot reach the Pub/Sub emulator" in err and "gcloud beta emulators pubsub start" in err
    assert "Traceback" not in err


def test_bad_flags_are_reported_before_anything_is_published(small_sample, capsys):
    root, _ = small_sample
    assert cli.main(["publish", "--input", root, "--topic", "abc", "--project", "touchline-test", "--rate", "-1"]) == 2
    assert "--rate must be >= 0" in capsys.readouterr().err
    assert cli.main(["publish", "--input", root, "--topic", "bad/name"]) == 2
    assert "not a valid Pub/Sub topic name" in capsys.readouterr().err
    assert cli.main(["publish", "--input", root + "/nope", "--topic", "projects/touchline-test/topics/abc"]) == 2
    assert "no app input files" in capsys.readouterr().err


def test_retime_moves_payload_and_attribute_together(small_sample):
    root, _ = small_sample
    files = files_of(root)
    plain = [m for m, _ in plan_messages(files)]
    target = 1_900_000_000_000
    moved = [m for m, _ in plan_messages(files, retime_to=target)]
    assert len(moved) == len(plain) and max(int(m.attributes["event_time"]) for m in moved) == target
    shift = target - int(plain[-1].order)
    for before, after in zip(plain, moved):
        if before.attributes["event_time"] == "0":          # no usable time (malformed): untouched
            assert after == before
            continue
        assert int(after.attributes["event_time"]) == int(before.attributes["event_time"]) + shift
        datum = json.loads(after.data)
        from touchline.transforms.channels.base import parse_timestamp
        assert parse_timestamp(datum["occurred_at"]) // 1000 == int(after.attributes["event_time"])
        assert {k: v for k, v in datum.items() if k != "occurred_at"} == \
            {k: v for k, v in json.loads(before.data).items() if k != "occurred_at"}
