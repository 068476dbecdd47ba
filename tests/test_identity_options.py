"""--identity_* flags and --blocklist_file: validated before any graph is built, with a fix for each mistake."""

from __future__ import annotations

import pytest

from touchline.pipelines.options import ConfigError, parse_pipeline_args, resolve_identity
from touchline.transforms.identity import IdentityConfig


def identity(*flags: str) -> IdentityConfig:
    return resolve_identity(parse_pipeline_args(list(flags), "touchline batch"))


def test_defaults_and_overrides(tmp_path):
    assert identity() == IdentityConfig()
    blocklist = tmp_path / "junk.txt"
    blocklist.write_text("# ours\nemail:noreply@shop.example\nN/A\n")
    config = identity("--identity_lookback_days", "7", "--identity_max_rounds", "12",
                      "--identity_degree_caps", "device_id=20, email=5", "--blocklist_file", str(blocklist))
    assert config.lookback_days == 7 and config.max_rounds == 12
    assert config.caps()["device_id"] == 20 and config.caps()["email"] == 5 and config.caps()["cookie_id"] == 50
    assert config.blocklist == (("email", "noreply@shop.example"), ("*", "N/A"))


@pytest.mark.parametrize("flags, problem, fix", [
    (["--identity_lookback_days", "-1"], "--identity_lookback_days must be 0 or more", "0 disables"),
    (["--identity_max_rounds", "99"], "between 0 and 64", "--identity_max_rounds=8"),
    (["--identity_degree_caps", "devise_id=20"], "did you mean device_id?", "kinds: customer_id"),
    (["--identity_degree_caps", "email=0"], "not KIND=N with N >= 1", "--identity_degree_caps device_id=20"),
    (["--blocklist_file", "/nowhere/junk.txt"], "cannot read --blocklist_file /nowhere/junk.txt", "check the path"),
])
def test_mistakes_name_the_problem_and_the_fix(flags, problem, fix):
    with pytest.raises(ConfigError) as err:
        identity(*flags)
    assert problem in err.value.problem and fix in err.value.fix
