"""The emulator fixture fails loudly (never skips) when the emulator is missing, and says how to install it."""

import pytest

from . import pubsub_emulator as emu


def test_missing_emulator_names_the_package_to_install(monkeypatch, tmp_path):
    monkeypatch.delenv("TOUCHLINE_PUBSUB_EMULATOR", raising=False)
    monkeypatch.setattr(emu, "_sdk_roots", lambda: [str(tmp_path)])
    with pytest.raises(emu.EmulatorMissing, match="google-cloud-cli-pubsub-emulator"):
        emu.find_emulator()


def test_explicit_emulator_path_must_be_executable(monkeypatch, tmp_path):
    script = tmp_path / "cloud-pubsub-emulator"
    script.write_text("#!/bin/sh\n")
    monkeypatch.setenv("TOUCHLINE_PUBSUB_EMULATOR", str(script))
    with pytest.raises(emu.EmulatorMissing, match="not an executable"):
        emu.find_emulator()


def test_emulator_runs_on_a_free_loopback_port(pubsub_emulator):
    host, port = pubsub_emulator.host.rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) > 0 and pubsub_emulator.alive()
