"""``vitrine publish``: good rows arrive on the real broker, bad rows are refused with their line and
reason and never sent, and the exit status says which happened.

The end-to-end tests run the command (its parser and ``run``) against the session's Apache Kafka broker
(``kafka`` fixture; a unique topic per test) and read the topic back with kafka-python.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from streams.jsonschema import event_json_schema
from streams.schema import parse_event
from vitrine_tools import publish_cli
from vitrine_tools.devstack.demo import SAMPLE_DIR
from vitrine_tools.publish import read_rows

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "docs" / "examples" / "catalog-example.jsonl"
IMAGES = sorted((SAMPLE_DIR / "images").glob("*.jpg"))[:2]


def vitrine_publish(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any], str]:
    """Run ``vitrine publish ARGV``; return the exit status, the JSON summary (last stdout line), stderr."""
    parser = argparse.ArgumentParser(prog="vitrine")
    publish_cli.register(parser.add_subparsers(dest="cmd", required=True))
    args = parser.parse_args(["publish", *argv])
    code = args.func(args)
    out, err = capsys.readouterr()
    return code, json.loads(out.strip().splitlines()[-1]), err


def read_topic(bootstrap: str, topic: str, timeout: float = 30) -> list[Any]:
    """Every record of ``topic`` (all partitions), up to the end offsets as they are now."""
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        parts = c.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        ends = c.end_offsets(tps)
        out: list[Any] = []
        deadline = time.monotonic() + timeout
        while any(c.position(tp) < ends[tp] for tp in tps):
            assert time.monotonic() < deadline, f"timed out reading {topic}"
            for batch in c.poll(timeout_ms=500).values():
                out += batch
        return sorted(out, key=lambda r: (r.partition, r.offset))
    finally:
        c.close()


@pytest.fixture
def images(tmp_path: Path) -> Path:
    """A folder ``img/`` beside the input files, with two sample photos ``a.jpg`` and ``b.jpg``."""
    (tmp_path / "img").mkdir()
    for name, src in zip(("a.jpg", "b.jpg"), IMAGES, strict=True):
        shutil.copy(src, tmp_path / "img" / name)
    return tmp_path / "img"


def _lines(path: Path, docs: list[Any]) -> Path:
    path.write_text("".join((d if isinstance(d, str) else json.dumps(d)) + "\n" for d in docs))
    return path


def _schema_validator() -> Any:
    jsonschema = pytest.importorskip("jsonschema")
    return jsonschema.Draft202012Validator(event_json_schema(), format_checker=jsonschema.FormatChecker())


UP = {"type": "upsert", "title": "Red dress", "price": 10, "images": ["img/a.jpg"]}


@pytest.mark.integration
@pytest.mark.api
def test_jsonl_good_rows_arrive_and_bad_rows_are_refused_with_their_line(
        kafka: Any, unique_name: Any, tmp_path: Path, images: Path, capsys: pytest.CaptureFixture[str]) -> None:
    topic = unique_name("pub")
    src = _lines(tmp_path / "events.jsonl", [
        {**UP, "product_id": "p-1", "version": 1, "attributes": {"colour": "red"}},        # 1 good
        "",                                                                                  # 2 blank
        {**UP, "product_id": "p-2", "version": 1, "title": None},                           # 3 title null
        '{"type": "upsert", "product_id": ',                                                 # 4 not JSON
        {"type": "patch", "product_id": "p-1", "version": 2, "fields": {"price": 7.5}},     # 5 good
        {**UP, "product_id": "p-3", "version": 1, "images": ["gopher://x/y.jpg"]},          # 6 bad scheme
        {"type": "delete", "product_id": "p-9", "version": 4},                              # 7 good
        {**UP, "product_id": "p-4", "version": 1, "images": ["img/missing.jpg"]},           # 8 no such file
        {**UP, "product_id": "p-5", "version": 1, "type": "merge"},                         # 9 unknown type
        {**UP, "product_id": "p-6", "version": 1, "price": -1},                             # 10 negative price
        {**UP, "product_id": "p-7", "version": 1, "occurred_at": "2026-01-01T00:00:00Z",
         "images": ["img/b.jpg", "https://shop.example/p-7.jpg"]},                          # 11 good
        "[1, 2]",                                                                            # 12 not an object
    ])
    code, summary, err = vitrine_publish(capsys, str(src), "--bootstrap", kafka.address, "--topic", topic)

    assert code == 1
    assert summary["sent"] == 4 and summary["refused"] == 7 and summary["topic"] == topic
    got = [(r["line"], r["reason"], r["field"]) for r in summary["refusals"]]
    assert got == [(3, "invalid_field", "title"), (4, "malformed_json", None), (6, "invalid_field", "images"),
                   (8, "missing_image", "images.0"), (9, "unknown_type", "type"), (10, "invalid_field", "price"),
                   (12, "malformed_json", None)]
    assert "greater than or equal to 0" in summary["refusals"][5]["message"]
    assert "line 8: refused (missing_image) images.0" in err

    records = read_topic(kafka.address, topic)
    values = [json.loads(r.value) for r in records]
    assert [(r.key, v["type"], v["version"]) for r, v in zip(records, values, strict=True)] == [
        (b"p-1", "upsert", 1), (b"p-1", "patch", 2), (b"p-9", "delete", 4), (b"p-7", "upsert", 1)]
    assert values[0]["images"] == [(images / "a.jpg").as_uri()] and values[0]["attributes"] == {"colour": "red"}
    assert values[3]["images"] == [(images / "b.jpg").as_uri(), "https://shop.example/p-7.jpg"]
    assert values[3]["occurred_at"] == 1767225600.0  # the ISO time, as epoch seconds
    assert values[1] == {"schema_version": 1, "product_id": "p-1", "version": 2,
                         "occurred_at": values[1]["occurred_at"], "type": "patch", "fields": {"price": 7.5}}
    validator = _schema_validator()
    for v in values:  # what goes on the wire is valid for the consumer and for the published schema
        parse_event(json.dumps(v))
        assert not list(validator.iter_errors(v))


CSV = """\
product_id,version,type,title,description,price,currency,in_stock,images,colour,category
s-1,1,,Red dress,,19.5,,true,img/a.jpg|img/b.jpg,red,dress
s-2,1,upsert,Blue shirt,,abc,,,img/a.jpg,,shirt
s-3,1,upsert,,,5,,,img/a.jpg,,
s-4,1,upsert,Cap,"two
lines",5,EUR,no,img/b.jpg,,hat
s-1,2,patch,,,15,,false,,,
s-1,3,patch,,,,,,,green,
s-2,5,delete,,,,,,,,
s-5,1,upsert,Coat,,50,eur,,img/a.jpg,,
s-6,x,upsert,Coat,,50,,,img/a.jpg,,
s-7,1,upsert,Coat,,50,,maybe,img/a.jpg,,
s-8,1,upsert,Coat,,50,,,img/a.jpg,,Outer Wear
s-9,2,delete,,,1,,,,,
"""


@pytest.mark.integration
@pytest.mark.api
def test_csv_rows_with_their_line_numbers(kafka: Any, unique_name: Any, tmp_path: Path, images: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    topic = unique_name("pubcsv")
    src = tmp_path / "catalog.csv"
    src.write_text(CSV)
    code, summary, _ = vitrine_publish(capsys, str(src), "--bootstrap", kafka.address, "--topic", topic)

    assert code == 1
    got = [(r["line"], r["reason"], r["field"]) for r in summary["refusals"]]
    assert got == [(3, "invalid_field", "price"), (4, "missing_field", "title"),
                   (8, "invalid_field", "fields.colour"), (10, "invalid_field", "currency"),
                   (11, "invalid_field", "version"), (12, "invalid_field", "in_stock"), (14, "invalid_field", "price")]
    assert summary["sent"] == 5 and summary["refused"] == 7
    # line 13 ("Outer Wear") is a valid attribute value, line 5's quoted cell spans lines 5 and 6
    records = read_topic(kafka.address, topic)
    values = {(json.loads(r.value)["product_id"], json.loads(r.value)["version"]): json.loads(r.value)
              for r in records}
    assert sorted(values) == [("s-1", 1), ("s-1", 2), ("s-2", 5), ("s-4", 1), ("s-8", 1)]
    first = values[("s-1", 1)]
    assert first["images"] == [(images / "a.jpg").as_uri(), (images / "b.jpg").as_uri()]
    assert first["attributes"] == {"colour": "red", "category": "dress"} and first["price"] == 19.5
    assert first["in_stock"] is True and first["currency"] == "EUR"
    assert values[("s-4", 1)]["description"] == "two\nlines" and values[("s-4", 1)]["in_stock"] is False
    assert values[("s-1", 2)]["fields"] == {"price": 15.0, "in_stock": False}
    assert values[("s-2", 5)]["type"] == "delete"
    assert values[("s-8", 1)]["attributes"] == {"category": "Outer Wear"}


@pytest.mark.integration
@pytest.mark.api
def test_the_example_file_sends_six_and_refuses_its_bad_line(kafka: Any, unique_name: Any,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    topic = unique_name("pubex")
    code, summary, _ = vitrine_publish(capsys, str(EXAMPLE), "--bootstrap", kafka.address, "--topic", topic)
    assert code == 1 and summary["sent"] == 6
    assert summary["refusals"] == [{"line": 7, "reason": "missing_field", "field": "title", "message": "Field required"}]
    values = [json.loads(r.value) for r in read_topic(kafka.address, topic)]
    assert [v["type"] for v in values] == ["upsert"] * 4 + ["patch", "delete"]
    assert all(Path(u.removeprefix("file://")).is_file() for v in values for u in v.get("images", []))


@pytest.mark.integration
@pytest.mark.api
def test_upload_to_s3_and_exit_0_when_every_row_is_sent(
        kafka: Any, s3: Any, unique_name: Any, tmp_path: Path, images: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from minio import Minio

    monkeypatch.setenv("VITRINE_S3_ENDPOINT", s3.address)
    monkeypatch.setenv("VITRINE_S3_ACCESS_KEY", s3.access_key)
    monkeypatch.setenv("VITRINE_S3_SECRET_KEY", s3.secret_key)
    topic, bucket = unique_name("pubs3"), f"pub-{uuid.uuid4().hex[:12]}"
    src = _lines(tmp_path / "events.ndjson", [{**UP, "product_id": "u-1", "version": 1},
                                              {**UP, "product_id": "u-2", "version": 1, "images": ["img/b.jpg"]},
                                              {**UP, "product_id": "u-3", "version": 1}])
    code, summary, _ = vitrine_publish(capsys, str(src), "--bootstrap", kafka.address, "--topic", topic,
                                       "--upload-to", f"s3://{bucket}")
    assert (code, summary["sent"], summary["refused"], summary["refusals"]) == (0, 3, 0, [])
    uris = [json.loads(r.value)["images"][0] for r in read_topic(kafka.address, topic)]
    assert len(uris) == 3 and all(u.startswith(f"s3://{bucket}/images/") for u in uris)
    assert uris[0] == uris[2] != uris[1]  # content-addressed: the same photo, the same object
    client = Minio(s3.address, access_key=s3.access_key, secret_key=s3.secret_key, secure=False)
    stored = client.get_object(bucket, uris[1].removeprefix(f"s3://{bucket}/")).read()
    assert stored == (images / "b.jpg").read_bytes()


@pytest.mark.integration
@pytest.mark.api
def test_exit_2_when_the_broker_does_not_acknowledge(kafka: Any, unique_name: Any, tmp_path: Path,
                                                     images: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic

    topic = unique_name("pubsmall")  # the broker refuses every record of this topic: too large
    admin = KafkaAdminClient(bootstrap_servers=kafka.address)
    admin.create_topics([NewTopic(topic, 1, 1, topic_configs={"max.message.bytes": "64"})])
    admin.close()
    src = _lines(tmp_path / "events.jsonl", [{**UP, "product_id": f"n-{i}", "version": 1} for i in range(3)])
    code, summary, _ = vitrine_publish(capsys, str(src), "--bootstrap", kafka.address, "--topic", topic)
    assert code == 2 and summary["sent"] == 0 and "did not acknowledge" in summary["error"]
    assert read_topic(kafka.address, topic) == []


def test_exit_2_when_the_file_cannot_be_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="vitrine")
    publish_cli.register(parser.add_subparsers(dest="cmd", required=True))
    args = parser.parse_args(["publish", str(tmp_path / "nope.jsonl"), "--bootstrap", "127.0.0.1:1"])
    assert args.func(args) == 2
    assert "no such file" in capsys.readouterr().err


def test_csv_rows_are_read_without_a_broker(tmp_path: Path) -> None:
    src = tmp_path / "c.csv"
    src.write_text("\ufeffproduct_id,version,title,price,images,season\nq-1,3,Hat,4,a.jpg|b.jpg,\n\nq-2,1\n")
    rows = list(read_rows(src))
    assert rows[0] == (2, {"type": "upsert", "product_id": "q-1", "version": 3, "title": "Hat", "price": 4.0,
                           "images": ["a.jpg", "b.jpg"]})
    assert rows[1][0] == 4 and rows[1][1].reason == "bad_row"  # type: ignore[union-attr]
    assert len(rows) == 2
