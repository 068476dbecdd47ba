"""docs/extending.md's worked example, exactly as documented: the touchline-chat distribution
(a 'chat' channel and a 'long hold time' signal) is built and installed into a throwaway folder,
found through its entry points, passes the contract kit, runs through `touchline batch`, and its
signal drives journeys and scores in the experience stage. Broken registrations give one
actionable message."""

from __future__ import annotations

import datetime as dt
import importlib
import os
import re
import shutil
import subprocess
import sys
from importlib.metadata import EntryPoint

import pytest
import yaml

from touchline import schemas
from touchline.transforms import channels, registry
from touchline.transforms.contract import SourceCases, assert_signal_contract, assert_source_contract, run_parse
from touchline.transforms.scoring import plugins
from touchline.transforms.scoring.model import load_model, parse_model

from .conftest import repo_root
from .experience_harness import dump, run_stage

EXAMPLE = os.path.join(repo_root(), "docs", "examples", "touchline-chat")
FIXTURES = os.path.join(EXAMPLE, "tests", "fixtures")


def _forget_plugins():
    schemas.clear_cache()
    channels.registry.cache_clear()
    plugins.registry.cache_clear()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The example built (offline) and installed into a folder put on sys.path, like a pip install."""
    src = tmp_path_factory.mktemp("src") / "touchline-chat"
    shutil.copytree(EXAMPLE, src)  # building writes egg-info next to the sources: never into the repo
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
                    "--target", str(target), str(src)], check=True, capture_output=True, timeout=300)
    sys.path.insert(0, str(target))
    importlib.invalidate_caches()
    _forget_plugins()
    yield str(target)
    sys.path.remove(str(target))
    for name in [m for m in sys.modules if m == "touchline_chat" or m.startswith("touchline_chat.")]:
        del sys.modules[name]
    importlib.invalidate_caches()
    _forget_plugins()


def test_entry_points_register_the_channel_its_schema_and_the_signal(site):
    from touchline.pipelines.options import BatchOptions, parse_pipeline_args

    assert "chat" in channels.names() and channels.get("chat").kind == "channel"
    assert "raw_chat_event" in schemas.names()
    assert "long_hold_time" in plugins.registry()
    options = parse_pipeline_args(["--chat_input", "x.jsonl"], "touchline batch")
    assert options.view_as(BatchOptions).chat_input == ["x.jsonl"]


def test_the_example_passes_the_contract_kit(site):
    assert_source_contract("chat", SourceCases.from_folder(FIXTURES))

    def tp(hold):
        return {"channel": "chat", "event_type": "chat_started", "attributes": {"hold_seconds": hold}}

    assert_signal_contract("long_hold_time", {"threshold_seconds": 600}, matching=[tp("840"), tp("601")],
                           not_matching=[tp("35"), tp("600")])


def test_chat_runs_through_touchline_batch(site, tmp_path):
    warehouse = tmp_path / "w.duckdb"
    env = {**os.environ, "PYTHONPATH": site + os.pathsep + os.environ.get("PYTHONPATH", "")}
    result = subprocess.run(
        [sys.executable, "-m", "touchline.pipelines.cli", "--quiet", "batch", "--chat_input", os.path.join(FIXTURES, "good.jsonl"),
         "--chat_input", os.path.join(FIXTURES, "bad.jsonl"), "--channels", "chat", "--warehouse", str(warehouse),
         "--hash_key_source", "demo", "--logical_date", "2026-10-31"], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    assert re.search(r"^chat\s+8\s+4\s+1\s+3$", result.stdout, re.M), result.stdout  # read = touchpoints + dups + dead letters
    import duckdb

    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        assert con.sql("SELECT channel, origin, COUNT(*) FROM touchpoints GROUP BY ALL").fetchall() == [("chat", "chat", 4)]
        assert sorted(con.sql("SELECT reason FROM dead_letters").fetchall()) == [
            ("invalid_timestamp",), ("unknown_event_type",), ("wrong_type",)]
        assert con.sql("SELECT COUNT(*) FROM touchpoints WHERE attributes['hold_seconds'] = '840'").fetchone() == (1,)
    finally:
        con.close()


def test_long_hold_time_drives_journeys_and_scores(site, tmp_path):
    from touchline.transforms.parse import ParseFn
    from touchline.transforms.context import RunContext

    with open(os.path.join(EXAMPLE, "touchline_chat", "signals.yaml"), encoding="utf-8") as fh:
        extra = yaml.safe_load(fh)
    doc = load_model().document()
    doc["model_version"] = "default-1+chat"
    doc["signals"] = {**extra, **doc["signals"]}  # "at the top of signals:", as the docs say
    model = parse_model(doc, "chat-model.yaml")
    fn = ParseFn("chat", RunContext("example", dt.date(2026, 10, 31), "demo"))
    touchpoints = {}
    with open(os.path.join(FIXTURES, "good.jsonl"), "rb") as fh:
        for kind, tp in run_parse(fn, fh.read().splitlines()):
            assert kind == "touchpoint"
            tp["person_id"] = "p_alice" if tp["ticket_id"] == "conv-1" else "p_bob"
            touchpoints[tp["event_id"]] = tp
    run_stage(str(tmp_path / "w.duckdb"), list(touchpoints.values()), dt.date(2026, 10, 31), str(tmp_path / "staging"),
              model=model)
    tables = dump(str(tmp_path / "w.duckdb"))
    components = {(r["person_id"], r["role"]): {c["signal"] for c in r["components"]} for r in tables["person_scores_current"]}
    assert "long_hold" in components[("p_alice", "customer")]       # waited 840 s > 600 s
    assert "long_hold" not in components[("p_bob", "customer")]     # waited 35 s
    assert "chat_started" in components[("p_bob", "customer")]
    alice = [j for j in tables["journeys"] if j["person_id"] == "p_alice"]
    assert alice and alice[0]["channels"] == ["chat"] and alice[0]["signal_weight"] == pytest.approx(-1.2 + 0.05 + 0.3)
    # long_hold (chat_started after 840 s on hold) + engagement (agent_message) + chat_ended


def test_docs_show_exactly_the_example_files():
    with open(os.path.join(repo_root(), "docs", "extending.md"), encoding="utf-8") as fh:
        text = fh.read()
    blocks = re.findall(r"```[a-z]*\n# (docs/examples/touchline-chat/[^\n]+)\n(.*?)```", text, re.S)
    shown = {path for path, _ in blocks}
    assert {"docs/examples/touchline-chat/pyproject.toml", "docs/examples/touchline-chat/touchline_chat/channel.py",
            "docs/examples/touchline-chat/touchline_chat/signals.py",
            "docs/examples/touchline-chat/touchline_chat/schemas/raw_chat_event.avsc",
            "docs/examples/touchline-chat/touchline_chat/signals.yaml"} <= shown, shown
    for path, body in blocks:
        with open(os.path.join(repo_root(), path), encoding="utf-8") as fh:
            assert fh.read() == body, f"docs/extending.md shows another {path} than the one the tests run"


# --------------------------------------------------------------------- broken registrations
def _entry_points(group_points: dict[str, list[EntryPoint]]):
    def fake(group=None):
        return group_points.get(group, [])
    return fake


@pytest.mark.parametrize("value, needle", [
    ("no_such_module:Thing", "cannot be loaded: ModuleNotFoundError"),
    ("touchline.transforms.scoring.plugins:AttributeThreshold", "is not a ChannelSpec subclass"),
    ("touchline.transforms.channels.web:WebChannel", "reuses the name"),
])
def test_a_broken_channel_registration_is_one_actionable_message(monkeypatch, value, needle):
    name = "web" if "WebChannel" in value else "broken"
    monkeypatch.setattr(registry, "entry_points", _entry_points(
        {channels.GROUP: [EntryPoint(name, value, channels.GROUP)]}))
    channels.registry.cache_clear()
    try:
        with pytest.raises(registry.PluginError) as err:
            channels.names()
    finally:
        monkeypatch.undo()
        channels.registry.cache_clear()
    assert needle in str(err.value) and "fix:" in str(err.value)


def test_a_channel_whose_schema_is_not_installed_names_the_fix(monkeypatch):
    import types

    class Orphan(channels.ChannelSpec):
        name = "orphan"
        schema_name = "raw_orphan_event"

    module = types.ModuleType("orphan_plugin")
    module.Orphan = Orphan
    monkeypatch.setitem(sys.modules, "orphan_plugin", module)
    monkeypatch.setattr(registry, "entry_points", _entry_points(
        {channels.GROUP: [EntryPoint("orphan", "orphan_plugin:Orphan", channels.GROUP)]}))
    channels.registry.cache_clear()
    try:
        with pytest.raises(registry.PluginError) as err:
            channels.names()
    finally:
        monkeypatch.undo()
        channels.registry.cache_clear()
    assert "names schema 'raw_orphan_event', which is not installed" in str(err.value)
    assert "touchline.schemas entry point group" in str(err.value)


def test_the_cli_reports_a_broken_plugin_without_a_stack_trace(monkeypatch, capsys):
    from touchline.pipelines import cli

    monkeypatch.setattr(registry, "entry_points", _entry_points(
        {plugins.GROUP: [EntryPoint("long_hold_time", "nowhere.signals:LongHoldTime", plugins.GROUP)],
         channels.GROUP: [EntryPoint("chat", "nowhere.chat:ChatChannel", channels.GROUP)]}))
    channels.registry.cache_clear()
    try:
        code = cli.main(["batch", "--input", "x"])
    finally:
        monkeypatch.undo()
        channels.registry.cache_clear()
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "entry point 'chat' = 'nowhere.chat:ChatChannel' (group touchline.channels) cannot be loaded" in err
    assert "fix: install the distribution" in err


def test_recommended_model_entries_for_adapter_events_load():
    from touchline.transforms.scoring.signals import Classifier

    with open(os.path.join(repo_root(), "docs", "extending.md"), encoding="utf-8") as fh:
        block = re.search(r"```yaml\n# recommended model entries for adapter events\n(.*?)```", fh.read(), re.S).group(1)
    doc = load_model().document()
    doc["signals"] = {**yaml.safe_load(block), **doc["signals"]}
    c = Classifier(parse_model(doc, "docs/extending.md"))
    assert c.signal("web", "identify", {}) == "identity_link"
    assert c.signal("transactions", "refund_failed", {}) == "refund_failed"
    assert c.signal("support", "ticket_updated", {}) == "admin_steps"
