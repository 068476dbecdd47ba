"""The scoring model file: the shipped default, TOML and YAML, and errors a person can act on."""

from __future__ import annotations

import pickle

import pytest
import yaml

from touchline.transforms.scoring.model import (FRICTION_PARAMS, SURVEY_SIGNAL, ModelError, default_model_path,
                                                 load_model, parse_model)


def default_doc() -> dict:
    with open(default_model_path(), encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def test_default_model_loads_with_every_flag_and_a_version():
    model = load_model()
    assert model.model_version == "default-1"
    assert {f.name for f in model.friction} == set(FRICTION_PARAMS)
    weights = model.weights()
    assert SURVEY_SIGNAL in weights and "app_crash" in weights and "repeat_contact" in weights
    # friction is weighted above the single touchpoints that raise it
    assert weights["unresolved_at_end"] < weights["ticket_closed_unresolved"] < weights["ticket_opened"] < 0
    assert weights["channel_switch_after_failure"] <= min(weights[s.name] for s in model.signals)
    assert model.context_days == 8  # repeat contacts and tickets look back 7 days
    assert pickle.loads(pickle.dumps(model)).weights() == weights
    assert load_model().fingerprint == model.fingerprint


def test_curve_saturates_and_is_monotonic():
    model = load_model()
    values = [model.curve(s) for s in (-1000, -10, -2, 0, 2, 10, 1000)]
    assert values == sorted(values) and values[0] < 1e-100 and values[-1] == 100.0
    assert model.curve(model.curve_midpoint) == pytest.approx(50.0)


def test_toml_and_yaml_give_the_same_model(tmp_path):
    toml = tmp_path / "m.toml"
    toml.write_text(
        'model_version = "t-1"\nhalf_life_days = 3.5\n[curve]\nmidpoint = 0\nscale = 2\n'
        '[signals.crash]\nweight = -1.0\ndaily_cap = 2\nfailure = true\nmatch = [{event_type = "app_crash"}]\n'
        '[signals.other]\nweight = 0.1\nmatch = [{}]\n'
        '[friction.payment_decline]\nweight = -2.0\nsignals = ["crash"]\n'
    )
    yml = tmp_path / "m.yaml"
    yml.write_text(
        "model_version: t-1\nhalf_life_days: 3.5\ncurve: {midpoint: 0, scale: 2}\nsignals:\n"
        "  crash: {weight: -1.0, daily_cap: 2, failure: true, match: [{event_type: app_crash}]}\n"
        "  other: {weight: 0.1, match: [{}]}\nfriction:\n  payment_decline: {weight: -2.0, signals: [crash]}\n"
    )
    a, b = load_model(str(toml)), load_model(str(yml))
    assert a.weights() == b.weights() == {"crash": -1.0, "other": 0.1, "payment_decline": -2.0, SURVEY_SIGNAL: 0.0}
    assert a.half_life_days == b.half_life_days == 3.5 and a.fingerprint == b.fingerprint


def test_changed_weights_round_trip_through_the_file(tmp_path):
    model = load_model()
    changed = model.with_changes(model_version="mine-2", weights={"app_crash": -3.0, SURVEY_SIGNAL: 1.0,
                                                                  "repeat_contact": -0.25},
                                 midpoint=0.5, scale=1.0, calibration={"seed": 7})
    path = tmp_path / "mine.yaml"
    path.write_text(changed.dump())
    again = load_model(str(path))
    assert again.model_version == "mine-2" and again.curve_midpoint == 0.5
    assert again.weights() == changed.weights()
    assert again.weights()["app_crash"] == -3.0 and again.weights()["engagement"] == model.weights()["engagement"]
    assert dict(again.calibration)["seed"] == "7"
    with pytest.raises(KeyError, match="no signal or friction flag named 'nope'"):
        model.with_changes(model_version="x", weights={"nope": 1.0}, midpoint=0, scale=1)


def _broken(change) -> dict:
    doc = default_doc()
    change(doc)
    return doc


@pytest.mark.parametrize("change, needles", [
    (lambda d: d.pop("model_version"), ["model_version", "is missing", "model_version: my-model-1"]),
    (lambda d: d.update(half_life_days=0), ["half_life_days", "greater than 0"]),
    (lambda d: d.update(weights={}), ["weights: unknown setting", "use one of"]),
    (lambda d: d.update(singals={}), ["did you mean 'signals'"]),
    (lambda d: d["signals"]["app_crash"].pop("weight"), ["signals.app_crash", "has no weight"]),
    (lambda d: d["signals"]["app_crash"].update(weight="high"), ["signals.app_crash.weight", "must be a number"]),
    (lambda d: d["signals"]["app_crash"].update(daily_cap=0), ["signals.app_crash.daily_cap", ">= 1"]),
    (lambda d: d["signals"]["app_crash"].update(match=[{"event_tpye": "x"}]), ["did you mean 'event_type'"]),
    (lambda d: d["friction"].update(repeat_contacts={"weight": -1}), ["friction.repeat_contacts", "did you mean 'repeat_contact'"]),
    (lambda d: d["friction"]["late_delivery"].update(signals=["delivery_lat"]), ["unknown signal 'delivery_lat'", "did you mean 'delivery_late'"]),
    (lambda d: d["friction"]["slow_resolution"].pop("after_hours"), ["friction.slow_resolution.after_hours", "is missing"]),
    (lambda d: d["outcomes"].update(converted=["payment_declined"]), ["also listed under"]),
    (lambda d: d["signals"].update(survey_answer={"weight": 1, "match": [{}]}), ["reserved for survey answers"]),
])
def test_invalid_models_name_the_entry_and_the_fix(change, needles):
    with pytest.raises(ModelError) as err:
        parse_model(_broken(change), "my_model.yaml")
    text = f"{err.value} {err.value.fix}"
    assert "scoring model my_model.yaml" in text
    for needle in needles:
        assert needle in text, (needle, text)


def test_unreadable_files(tmp_path):
    with pytest.raises(ModelError, match="file not found"):
        load_model(str(tmp_path / "missing.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("model_version: x\nsignals:\n  a: {weight: 1\n")
    with pytest.raises(ModelError, match=r"not valid YAML at line \d+"):
        load_model(str(bad))
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(ModelError, match="is empty"):
        load_model(str(empty))
    with pytest.raises(ModelError, match="is a folder"):
        load_model(str(tmp_path))
