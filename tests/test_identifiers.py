import pytest

from touchline.transforms.errors import Redactor, dead_letter
from touchline.transforms.identifiers import DEMO_KEY, Hasher, KeyError_, key_fingerprint, normalize, resolve_key


def test_normalization():
    assert normalize("email", "  Alice.Smith@Example.COM ") == "alice.smith@example.com"
    assert normalize("phone", "+44 20 7946 0958") == normalize("phone", "0044 20 7946 0958") == "442079460958"
    assert normalize("phone", "+44-20-7946-0958") == "442079460958"
    assert normalize("customer_id", " C0001 ") == "C0001"
    assert normalize("email", None) == "" and normalize("email", "   ") == ""


def test_keyed_hash_is_stable_per_key_and_kind(hasher):
    a = hasher.identifier("email", "Alice@X.com ")
    b = hasher.identifier("email", "alice@x.com")
    assert a == b and len(a["id_hash"]) == 32 and "alice" not in a["id_hash"]
    assert hasher.identifier("customer_id", "alice@x.com")["id_hash"] != a["id_hash"]
    assert Hasher(b"another key").identifier("email", "alice@x.com") != a
    assert hasher.identifier("email", "  ") is None


def test_key_sources(tmp_path, monkeypatch):
    assert resolve_key("demo") == DEMO_KEY
    monkeypatch.setenv("MY_KEY", "s3cret")
    assert resolve_key("env:MY_KEY") == b"s3cret"
    (tmp_path / "k").write_bytes(b"filekey\n")
    assert resolve_key(f"file:{tmp_path / 'k'}") == b"filekey"
    with pytest.raises(KeyError_, match="MISSING_KEY is not set"):
        resolve_key("env:MISSING_KEY")
    with pytest.raises(KeyError_, match="cannot read hash key file"):
        resolve_key(f"file:{tmp_path / 'nope'}")
    with pytest.raises(KeyError_, match="unknown hash key source"):
        resolve_key("vault:x")
    assert key_fingerprint(b"a") != key_fingerprint(b"b")


def test_redaction_removes_emails_and_phones(hasher):
    r = Redactor(hasher)
    text = '{"requester_email": "Bob@Example.com ", "requester_phone": "+44 20 7946 0958", "note": "call +1 (415) 555-0134 or mail x.y@z.org", "n": 20261001}'
    out = r.text(text)
    for secret in ("Bob@Example.com", "7946 0958", "(415) 555-0134", "x.y@z.org"):
        assert secret not in out
    assert f"<email:{hasher.hash('email', 'bob@example.com')}>" in out
    assert f"<phone:{hasher.hash('phone', '442079460958')}>" in out
    assert "20261001" in out  # numbers that are not phones stay


def test_dead_letter_shape(hasher):
    row = dead_letter(run_id="r", logical_date=1, channel="web", source="f@0", failed_step="Decode",
                      reason="invalid_json", payload=b'{"email": "a@b.com"', redactor=Redactor(hasher))
    assert row["payload_encoding"] == "text" and "a@b.com" not in row["raw_payload"]
    again = dead_letter(run_id="r2", logical_date=2, channel="web", source="f@0", failed_step="Decode",
                        reason="invalid_json", payload=b'{"email": "a@b.com"', redactor=Redactor(hasher))
    assert row["dead_letter_id"] == again["dead_letter_id"]  # stable across runs
    binary = dead_letter(run_id="r", logical_date=1, channel="web", source="f@9", failed_step="Decode",
                         reason="invalid_encoding", payload=b"\xff\xfe", redactor=Redactor(hasher))
    assert binary["payload_encoding"] == "base64" and binary["raw_payload"] == "//4="
    try:
        raise RuntimeError("boom")
    except RuntimeError as exc:
        crash = dead_letter(run_id="r", logical_date=1, channel="web", source="f@1", failed_step="Parse",
                            reason="unexpected_error", payload={"a": 1}, redactor=Redactor(hasher), exc=exc)
    assert crash["error_class"] == "RuntimeError" and "boom" in crash["stack"] and crash["payload_encoding"] == "json"
