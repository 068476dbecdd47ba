"""The plug-in contract kit, applied to every built-in source (channels and adapters) and signal
plug-in; and proof that it catches what it claims to."""

import os

import pytest

from touchline.transforms import channels
from touchline.transforms.contract import (ContractError, SourceCases, assert_signal_contract, assert_source_contract,
                                           check_signal_plugin, check_source)
from touchline.transforms.scoring import plugins

from .conftest import repo_root

FIXTURES = os.path.join(repo_root(), "tests", "fixtures")


def cases(name: str) -> SourceCases:
    kind = "channels" if channels.get(name).kind == "channel" else "adapters"
    return SourceCases.from_folder(os.path.join(FIXTURES, kind, name))


@pytest.mark.parametrize("name", [c.name for c in channels.BUILTIN])
def test_every_builtin_source_passes_the_contract(name):
    assert_source_contract(name, cases(name))


def test_the_kit_catches_a_wrong_expected_reason_and_leaked_pii():
    good = cases("web")
    # "https://shop.example/login" is kept as the url attribute: declared as PII, the kit must flag it
    wrong = SourceCases(good=good.good, bad=[(b'{"event_id": "x"}', "invalid_json")], pii=["https://shop.example/login"])
    problems = check_source("web", wrong)
    assert any("reason missing_field" in p and "expected invalid_json" in p for p in problems), problems
    assert any("clear-text PII 'https://shop.example/login'" in p for p in problems), problems
    assert not any("alice@example.com" in p for p in problems), problems  # real e-mails are hashed
    with pytest.raises(ContractError):
        assert_source_contract("web", wrong)


def test_the_kit_catches_a_good_record_that_dead_letters():
    broken = SourceCases(good=[b'{"event_id": "w", "occurred_at": "2026-10-05T09:00:00Z", "event_type": "page_view"}'])
    problems = check_source("web", broken)
    assert any("good record 0 became a dead letter: missing_field" in p for p in problems), problems


def test_builtin_signal_plugin_passes_the_contract():
    tp = lambda v: {"channel": "web", "event_type": "page_view", "attributes": {"engagement_time_msec": v}}  # noqa: E731
    assert_signal_contract("attribute_threshold", {"attribute": "engagement_time_msec", "below": 1000},
                           matching=[tp("200"), tp("0")], not_matching=[tp("5000"), tp("1000")])


class Fragile(plugins.SignalPlugin):
    """A plug-in that trusts its input (what the kit must catch)."""

    name = "fragile"

    def matches(self, touchpoint):
        return float(touchpoint["attributes"]["hold_seconds"]) > 10


def test_the_kit_catches_a_plugin_that_raises_on_odd_input(monkeypatch):
    monkeypatch.setattr(plugins, "BUILTIN", (*plugins.BUILTIN, Fragile))
    plugins.registry.cache_clear()
    try:
        problems = check_signal_plugin("fragile", {}, matching=[{"channel": "support", "event_type": "customer_contact",
                                                                  "attributes": {"hold_seconds": "60"}}])
    finally:
        plugins.registry.cache_clear()
    assert any("raises KeyError on odd attributes {}" in p for p in problems), problems
    assert any("raises ValueError on odd attributes" in p for p in problems), problems
