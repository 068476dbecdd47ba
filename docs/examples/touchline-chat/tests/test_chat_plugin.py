"""The plug-in's own tests: Touchline's contract kit on the chat channel and the signal."""

import os

from touchline.transforms.contract import SourceCases, assert_signal_contract, assert_source_contract

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


def test_chat_channel_contract():
    assert_source_contract("chat", SourceCases.from_folder(FIXTURES))


def test_long_hold_time_contract():
    def tp(hold):
        return {"channel": "chat", "event_type": "chat_started", "attributes": {"hold_seconds": hold}}

    assert_signal_contract("long_hold_time", {"threshold_seconds": 600},
                           matching=[tp("840"), tp("601")], not_matching=[tp("35"), tp("600")])
