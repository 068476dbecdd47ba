"""Signal plug-ins in the model file: validation with actionable errors, file order, the classifier."""

import pytest

from touchline.transforms.scoring import plugins
from touchline.transforms.scoring.model import ModelError, load_model, parse_model
from touchline.transforms.scoring.signals import Classifier


def model_with(signals: dict):
    doc = load_model().document()
    doc["signals"] = {**signals, **doc["signals"]}
    return parse_model(doc, "my-model.yaml")


def test_a_plugin_signal_decides_among_the_touchpoints_its_match_admits():
    model = model_with({"slow_page": {"weight": -0.5, "plugin": "attribute_threshold",
                                      "params": {"attribute": "load_ms", "above": 3000}, "match": [{"channel": "web"}]}})
    c = Classifier(model)
    assert c.signal("web", "page_view", {"load_ms": "4500"}) == "slow_page"
    assert c.signal("web", "page_view", {"load_ms": "900"}) == "engagement"  # falls through to later signals
    assert c.signal("app", "screen_view", {"load_ms": "9000"}) == "engagement"  # match excludes app
    assert c.signal("web", "web_error", {"load_ms": "abc"}) == "web_error"
    spec = next(s for s in model.signals if s.name == "slow_page")
    assert spec.plugin == "attribute_threshold" and dict(spec.params)["above"] == 3000.0
    assert model.weights()["slow_page"] == -0.5 and model.daily_caps()["slow_page"] == 10


@pytest.mark.parametrize("entry, where, fix", [
    ({"plugin": "long_hold_time"}, "signals.s.plugin: no signal plug-in named 'long_hold_time' is installed",
     "touchline.signals entry point group"),
    ({"plugin": "attribute_treshold", "params": {"attribute": "x", "above": 1}}, "(did you mean 'attribute_threshold'?)",
     "attribute_threshold"),
    ({"plugin": "attribute_threshold", "params": {"attribute": "x"}}, "signals.s.params: set `above` or `below`",
     "takes attribute (str), above (float), below (float)"),
    ({"plugin": "attribute_threshold", "params": {"attribute": "x", "above": "high"}},
     "parameter 'above' must be float, got 'high'", "above (float)"),
    ({"params": {"a": 1}, "match": [{}]}, "signals.s.params: is only for plug-in signals", "add `plugin: NAME`"),
])
def test_model_errors_name_the_entry_and_the_fix(entry, where, fix):
    plugins.registry.cache_clear()
    with pytest.raises(ModelError) as err:
        model_with({"s": {"weight": -1.0, **entry}})
    assert where in str(err.value) and fix in err.value.fix, (str(err.value), err.value.fix)


def test_a_calibrated_model_keeps_the_plugin_signal():
    model = model_with({"slow_page": {"weight": -0.5, "plugin": "attribute_threshold",
                                      "params": {"attribute": "load_ms", "above": 3000}}})
    again = model.with_changes(model_version="cal-1", weights={"slow_page": -0.9}, midpoint=-1.0, scale=1.2)
    spec = next(s for s in again.signals if s.name == "slow_page")
    assert spec.weight == -0.9 and spec.plugin == "attribute_threshold"
    assert Classifier(again).signal("web", "page_view", {"load_ms": "3001"}) == "slow_page"
