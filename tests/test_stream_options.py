"""`touchline stream` options: validated before any graph is built (no Pub/Sub needed here)."""

import pytest

from touchline.pipelines.options import ConfigError, parse_duration, parse_pipeline_args, resolve_stream

SUB = "projects/touchline-test/subscriptions/touchline-events"


def resolve(tmp_path, *flags):
    argv = ["--subscription", SUB, "--warehouse", str(tmp_path / "w.duckdb"), "--hash_key_source", "demo", *flags]
    return resolve_stream(parse_pipeline_args(argv, "touchline stream"), check_pubsub=False)


def test_defaults_and_durations(tmp_path):
    plan = resolve(tmp_path, "--allowed_lateness", "90m", "--dedup_horizon", "2d", "--write_max_latency", "250ms")
    assert (plan.allowed_lateness, plan.dedup_horizon, plan.write_max_latency) == (5400, 172800, 0.25)
    assert plan.local and plan.replay and plan.run_id.startswith("stream-") and plan.subscription == SUB
    assert resolve(tmp_path).run_id == plan.run_id   # stable across restarts: same subscription, warehouse, key
    assert [parse_duration(v, "--x") for v in ("45", "45s", "1.5h", "7d")] == [45, 45, 5400, 604800]


def test_short_names_need_a_project(tmp_path):
    argv = ["--subscription", "touchline-events", "--project", "touchline-test", "--warehouse", str(tmp_path / "w.duckdb"),
            "--hash_key_source", "demo"]
    assert resolve_stream(parse_pipeline_args(argv, "x"), check_pubsub=False).subscription == SUB


@pytest.mark.parametrize("flags, message", [
    (["--allowed_lateness", "2d", "--dedup_horizon", "1d"], "counted twice"),
    (["--allowed_lateness", "tomorrow"], "is not a duration"),
    (["--write_batch_size", "0"], "at least 1"),
    (["--lateness_shards", "0"], "at least 1"),
    (["--write_max_latency", "0s"], "must be positive"),
    (["--runner", "DataflowRunner"], "cannot be written from DataflowRunner"),
    (["--subscription", "projects/x/subscriptions/abc"], "not a valid Google Cloud project id"),
    (["--replay_on_restart", "maybe"], "invalid choice"),
    (["--identity_refresh", "10s"], "at least 1m"),
    (["--identity_refresh", "hourly"], "is not a duration"),
    (["--journey_gap_hours", "0"], "between 0 and 720"),
    (["--scoring_model", "/nonexistent/model.yaml"], "model"),
])
def test_bad_settings_name_the_fix(tmp_path, flags, message, capsys):
    with pytest.raises((ConfigError, SystemExit)) as err:
        resolve(tmp_path, *flags)
    text = str(err.value) + capsys.readouterr().err
    assert message in text


def test_journeys_and_scores_take_the_batch_settings(tmp_path):
    plan = resolve(tmp_path, "--journey_gap_hours", "6", "--identity_refresh", "15m")
    assert plan.journey_gap_hours == 6 and plan.model.model_version
    assert plan.identity_refresh == 0   # the local runner reads identity_map once (see docs/streaming.md)


def test_replay_can_be_switched_off_or_on(tmp_path):
    assert resolve(tmp_path, "--replay_on_restart", "off").replay is False
    assert resolve(tmp_path, "--replay_on_restart", "on").replay is True


def test_missing_subscription_says_how_to_get_one(tmp_path):
    with pytest.raises(ConfigError, match="no --subscription") as err:
        resolve_stream(parse_pipeline_args(["--warehouse", str(tmp_path / "w.duckdb")], "x"), check_pubsub=False)
    assert "touchline publish --create" in err.value.fix
