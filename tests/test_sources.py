import gzip

import random

import fastavro
import pytest
from apache_beam.testing.util import assert_that, equal_to

from touchline import schemas
from touchline.transforms.sources import ReadChannelFiles, read_avro_range, read_jsonl_range, read_range

from .conftest import beam_pipeline

UNBOUNDED = 1 << 62


def _lines(n):
    rng = random.Random(1)
    return [("x" * rng.randint(0, 40)).encode() for _ in range(n)]


def test_jsonl_ranges_partition_the_file_exactly(tmp_path):
    lines = _lines(500)
    path = tmp_path / "a.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    whole = list(read_jsonl_range(str(path), 0, UNBOUNDED))
    assert [p for _, p, _ in whole] == lines
    size = path.stat().st_size
    for step in (1, 7, 64, 1000):
        parts = []
        for start in range(0, size, step):
            parts += list(read_jsonl_range(str(path), start, start + step))
        assert parts == whole, step


def test_jsonl_positions_are_byte_offsets_and_gzip_reads(tmp_path):
    path = tmp_path / "b.jsonl"
    path.write_bytes(b"a\n\nbb\r\nccc")
    assert [(s.rsplit("@", 1)[1], p) for s, p, _ in read_jsonl_range(str(path), 0, UNBOUNDED)] == [
        ("0", b"a"), ("2", b""), ("3", b"bb"), ("7", b"ccc")]
    gz = tmp_path / "c.jsonl.gz"
    gz.write_bytes(gzip.compress(b"one\ntwo\n"))
    assert [p for _, p, _ in read_range((str(gz), 0, UNBOUNDED))] == [b"one", b"two"]


def _write_avro(path, n, sync_interval=200):
    records = [{"event_id": f"e{i}", "occurred_at": "2026-10-01T10:00:00Z", "event_type": "app_open", "device_id": f"d{i}"}
               for i in range(n)]
    with open(path, "wb") as fh:
        fastavro.writer(fh, schemas.parsed("raw_app_event"), records, codec="deflate", sync_interval=sync_interval)
    return records


def test_avro_ranges_partition_blocks_exactly(tmp_path):
    path = tmp_path / "a.avro"
    _write_avro(path, 300)
    whole = list(read_avro_range(str(path), 0, UNBOUNDED))
    assert [p["event_id"] for _, p, _ in whole] == [f"e{i}" for i in range(300)]
    assert len({s.split("#")[0] for s, _, _ in whole}) > 5  # several blocks
    size = path.stat().st_size
    for step in (1, 50, 333, 4096):
        parts = []
        for start in range(0, size, step):
            parts += list(read_avro_range(str(path), start, start + step))
        assert parts == whole, step


def test_corrupt_avro_block_is_one_error_and_the_rest_reads(tmp_path):
    path = tmp_path / "c.avro"
    _write_avro(path, 300)
    blocks = sorted({int(s.rsplit("@", 1)[1].split("#")[0]) for s, _, _ in read_avro_range(str(path), 0, UNBOUNDED)})
    data = bytearray(path.read_bytes())
    target = blocks[1]
    for i in range(target + 6, target + 30):  # smash compressed bytes, keep the block header
        data[i] = 0xAB
    path.write_bytes(bytes(data))
    out = list(read_avro_range(str(path), 0, UNBOUNDED))
    errors = [(s, e) for s, _, e in out if e]
    assert len(errors) == 1 and errors[0][1][0] == "corrupt_avro" and errors[0][0].endswith(f"@{target}")
    assert len([1 for _, _, e in out if e is None]) < 300


def test_not_an_avro_file(tmp_path):
    path = tmp_path / "x.avro"
    path.write_bytes(b"hello")
    ((source, payload, error),) = list(read_avro_range(str(path), 0, UNBOUNDED))
    assert error[0] == "unreadable_file" and payload == b"hello"


def test_read_channel_files_transform(tmp_path):
    (tmp_path / "app").mkdir()
    _write_avro(tmp_path / "app" / "p1.avro", 20)
    (tmp_path / "app" / "p2.jsonl").write_bytes(b'{"a": 1}\n{"b": 2}\n')
    (tmp_path / "app" / "README.txt").write_bytes(b"ignored")
    with beam_pipeline() as p:
        out = p | ReadChannelFiles([str(tmp_path / "app" / "*")], split_bytes=100) | "Kinds" >> __import__("apache_beam").Map(
            lambda r: type(r[1]).__name__)
        assert_that(out, equal_to(["dict"] * 20 + ["bytes"] * 2))

