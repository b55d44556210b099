"""End to end on real services: Apache Kafka (KRaft), the Milvus Lite server, an S3 server, and the
real ingest, index and query workers as processes, with the real models.

One stack per module (the workers load their models once); each test uses its own product ids.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from indexer.store import ProductIndex
from streams.publisher import CatalogPublisher
from streams.query_client import QueryClient
from vitrine_tools.devstack.demo import SAMPLE_DIR, load_sample
from vitrine_tools.devstack.stack import LocalStack
from workers.runtime.wiring import layout_for
from workers.settings import Settings
from workers.vision.factory import production_pipeline

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
SAMPLE = load_sample()


def wait_until(cond: Callable[[], Any], timeout: float = 60, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Harness:
    def __init__(self, stack: LocalStack, settings: Settings, s3: Any) -> None:
        from minio import Minio

        self.stack = stack
        self.settings = settings
        self.topics = settings.topics
        self.s3 = Minio(s3.address, access_key=s3.access_key, secret_key=s3.secret_key, secure=False)
        self.pub = CatalogPublisher(stack.kafka_bootstrap, self.topics.events, s3=self.s3,
                                    bucket="vitrine-test").start()
        self.index = ProductIndex(stack.milvus_uri, layout_for(settings, production_pipeline())).start(create=False)
        self.client = QueryClient(stack.kafka_bootstrap, self.topics.requests, self.topics.responses).start()

    def image(self, i: int) -> str:
        return f"file://{SAMPLE_DIR / SAMPLE[i % len(SAMPLE)]['image']}"

    def upsert(self, pid: str, version: int, i: int = 0, **kw: Any) -> None:
        row = SAMPLE[i % len(SAMPLE)]
        args = {"title": row["title"], "price": 20.0, "images": [self.image(i)],
                "attributes": {"category": row["category"]}, **kw}
        self.pub.upsert(pid, version, **args)

    def marker_after(self, pid: str) -> str:
        """A fresh product id on ``pid``'s partition: once it is indexed, every earlier event there was handled."""
        from kafka.partitioner.default import murmur2

        def part(key: str) -> int:
            return (murmur2(key.encode()) & 0x7FFFFFFF) % self.settings.partitions

        return next(m for m in (f"m-{uuid.uuid4().hex[:8]}" for _ in range(1000)) if part(m) == part(pid))

    def row(self, pid: str, vectors: bool = False) -> dict[str, Any] | None:
        return self.index.get(pid, with_vectors=vectors)

    def wait_version(self, pid: str, version: int, timeout: float = 90) -> dict[str, Any]:
        return wait_until(lambda: (r := self.row(pid)) is not None and r["version"] == version and r,
                          timeout, f"{pid} at version {version}")

    def dlq(self) -> list[dict[str, Any]]:
        from kafka import KafkaConsumer, TopicPartition

        c = KafkaConsumer(bootstrap_servers=self.stack.kafka_bootstrap, group_id=None,
                          enable_auto_commit=False, consumer_timeout_ms=1000)
        tp = TopicPartition(self.topics.dlq, 0)
        c.assign([tp])
        c.seek_to_beginning(tp)
        out = [json.loads(r.value) for r in c]
        c.close()
        return out

    def http(self, body: Any, token: str | None = None) -> tuple[int, dict[str, Any]]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(f"{self.stack.workers['query'].http}/search", data=data, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())


@pytest.fixture(scope="module")
def h(kafka: Any, milvus: Any, s3: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    run = uuid.uuid4().hex[:8]
    env = {
        "VITRINE_COLLECTION_ALIAS": f"e2e_{run}",
        "VITRINE_FETCH_ALLOW_FILE": "true",
        "VITRINE_FETCH_FILE_ROOT": str(SAMPLE_DIR),
        "VITRINE_S3_ENDPOINT": s3.address,
        "VITRINE_S3_ACCESS_KEY": s3.access_key,
        "VITRINE_S3_SECRET_KEY": s3.secret_key,
        "VITRINE_BATCH_MAX_WAIT_S": "0.02",
    }
    stack = LocalStack(tmp_path_factory.mktemp("stack"), kafka_bootstrap=kafka.address, milvus_uri=milvus.address,
                       topic_prefix=f"e2e{run}", env=env).start()
    settings = Settings(kafka_bootstrap=stack.kafka_bootstrap, milvus_uri=stack.milvus_uri,
                        topic_prefix=stack.topic_prefix, partitions=stack.partitions,
                        collection_alias=env["VITRINE_COLLECTION_ALIAS"])
    harness = Harness(stack, settings, s3)
    yield harness
    harness.client.close()
    harness.pub.close()
    harness.index.close()
    stack.stop()


def test_publish_becomes_searchable_by_photo_text_and_product(h: Harness) -> None:
    pid = f"p-{uuid.uuid4().hex[:8]}"
    shoes = next(i for i, r in enumerate(SAMPLE) if r["category"] == "shoes")
    h.upsert(pid, 1, shoes, title="black leather running shoes", attributes={"category": "shoes", "colour": "Black"})
    h.pub.flush()
    row = h.wait_version(pid, 1)
    assert row["category"] == "shoes" and row["colour"] == "black" and not row["deleted"]
    assert row["model_version"] == production_pipeline().model_version

    reply = h.client.search({"kind": "text", "text": "black leather running shoes", "k": 5})
    assert reply["ok"] and pid in [r["product_id"] for r in reply["results"]]

    photo = base64.b64encode(Path(h.image(shoes)[7:]).read_bytes()).decode()
    status, reply = h.http({"request_id": "photo", "kind": "image", "image": {"b64": photo}, "k": 3})
    assert status == 200 and reply["results"][0]["product_id"] == pid and reply["results"][0]["score"] > 0.99

    status, reply = h.http({"request_id": "f", "kind": "image", "image": {"b64": photo}, "k": 3,
                            "filters": {"category": "dress"}})
    assert status == 200 and pid not in [r["product_id"] for r in reply["results"]]

    reply = h.client.search({"kind": "similar", "product_id": pid, "k": 3})
    assert reply["ok"] and pid not in [r["product_id"] for r in reply["results"]]


def test_patch_changes_fields_and_keeps_vectors(h: Harness) -> None:
    pid, twin, other = (f"{prefix}-{uuid.uuid4().hex[:8]}" for prefix in ("p", "twin", "o"))
    photo = 40  # a photo no other test here publishes: pid and its twin share it, other has its own
    h.upsert(pid, 1, photo, price=50.0)
    h.upsert(twin, 1, photo, price=50.0)
    h.upsert(other, 1, photo + 1)
    h.pub.flush()
    for p in (twin, other):
        h.wait_version(p, 1)
    before = h.wait_version(pid, 1) and h.row(pid, vectors=True)
    h.pub.patch(pid, 2, price=35.5, in_stock=False)
    h.pub.flush()
    after = h.wait_version(pid, 2) and h.row(pid, vectors=True)
    assert after["price"] == 35.5 and after["in_stock"] is False and after["title"] == before["title"]
    for name in ("image_vec", "text_vec", "colour_vec"):
        assert np.array_equal(np.asarray(before[name]), np.asarray(after[name]))

    def similar_to_twin(k: int, **filters: Any) -> list[dict[str, Any]]:
        reply = h.client.search({"kind": "similar", "product_id": twin, "k": k, "filters": filters})
        assert reply["ok"], reply
        return reply["results"]

    # unfiltered, the out-of-stock pid is the twin's nearest neighbour (the same photo) ...
    assert similar_to_twin(3)[0]["product_id"] == pid
    # ... so in_stock=True must take it out, and leaves the in-stock products
    in_stock = similar_to_twin(100, in_stock=True)
    ids = [r["product_id"] for r in in_stock]
    assert other in ids and pid not in ids and all(r["in_stock"] is True for r in in_stock), in_stock
    # and in_stock=False keeps only it (and whatever else is out of stock), not the in-stock ones
    out_of_stock = similar_to_twin(100, in_stock=False)
    ids = [r["product_id"] for r in out_of_stock]
    assert pid in ids and other not in ids and all(r["in_stock"] is False for r in out_of_stock), out_of_stock


def test_delete_leaves_tombstone_and_late_upsert_cannot_resurrect(h: Harness) -> None:
    pid = f"p-{uuid.uuid4().hex[:8]}"
    h.upsert(pid, 1, 5)
    h.pub.flush()
    h.wait_version(pid, 1)
    h.pub.delete(pid, 3)
    h.pub.flush()
    row = wait_until(lambda: (r := h.row(pid)) and r["deleted"] and r, 60, "tombstone")
    assert row["version"] == 3
    h.upsert(pid, 2, 6)  # late, older than the delete
    marker = h.marker_after(pid)
    h.upsert(marker, 1, 7)
    h.pub.flush()
    h.wait_version(marker, 1)
    row = h.row(pid)
    assert row["deleted"] and row["version"] == 3
    reply = h.client.search({"kind": "similar", "product_id": marker, "k": 100})
    assert pid not in [r["product_id"] for r in reply["results"]]


def test_duplicated_and_reordered_events_converge_to_newest(h: Harness) -> None:
    pid = f"p-{uuid.uuid4().hex[:8]}"
    for v in (2, 5, 1, 5, 3, 4, 2):
        h.upsert(pid, v, v, title=f"version {v}")
    h.pub.flush()
    row = h.wait_version(pid, 5)
    assert row["title"] == "version 5"
    marker = h.marker_after(pid)
    h.pub.send_raw(pid, json.dumps({"schema_version": 1, "type": "patch", "product_id": pid, "version": 4,
                                    "occurred_at": time.time(), "fields": {"price": 1.0}}).encode())
    h.upsert(marker, 1, 1)
    h.pub.flush()
    h.wait_version(marker, 1)
    assert h.row(pid)["version"] == 5 and h.row(pid)["price"] == 20.0


def test_poison_events_go_to_dlq_and_neighbours_are_indexed(h: Harness) -> None:
    good = [f"g-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    bad_json_key = f"bad-{uuid.uuid4().hex[:6]}"
    missing = f"miss-{uuid.uuid4().hex[:6]}"
    h.upsert(good[0], 1, 8)
    h.pub.send_raw(bad_json_key, b'{"schema_version": 1, "type": ')
    h.upsert(good[1], 1, 9)
    h.upsert(missing, 1, 0, images=[f"file://{SAMPLE_DIR}/no-such-file.jpg"])
    h.pub.send_raw(bad_json_key, json.dumps({"schema_version": 9, "type": "upsert"}).encode())
    h.upsert(good[2], 1, 10)
    h.pub.flush()
    for pid in good:
        h.wait_version(pid, 1)

    def reasons() -> dict[str, str]:
        return {f"{d['key']}:{d['reason']}": d for d in h.dlq() if d["key"] in (bad_json_key, missing)}

    found = wait_until(lambda: len(r := reasons()) >= 3 and r, 60, "three dead letters")
    assert {k.split(":")[1] for k in found} == {"malformed_json", "unknown_schema_version", "not_found"}
    rec = found[f"{bad_json_key}:malformed_json"]
    assert base64.b64decode(rec["original_b64"]) == b'{"schema_version": 1, "type": '
    assert rec["stage"] == "validate" and found[f"{missing}:not_found"]["stage"] == "fetch"
    assert h.row(missing) is None


def test_image_through_s3_with_the_minio_client(h: Harness) -> None:
    pid = f"s3-{uuid.uuid4().hex[:8]}"
    uri = h.pub.upload_image(SAMPLE_DIR / SAMPLE[11]["image"])
    assert uri.startswith("s3://vitrine-test/")
    h.upsert(pid, 1, 11, images=[uri])
    h.pub.flush()
    row = h.wait_version(pid, 1)
    assert row["image_uri"] == uri
    reply = h.client.search({"kind": "image", "image": {"uri": uri}, "k": 1})
    assert reply["ok"] and reply["results"][0]["product_id"] == pid


def test_bad_queries_get_error_replies_over_kafka_and_http(h: Harness) -> None:
    status, reply = h.http(b"{not json")
    assert status == 400 and reply["error"]["code"] == "invalid_request"
    status, reply = h.http({"request_id": "x", "kind": "teleport"})
    assert status == 400 and reply["error"]["field"] == "kind"
    status, reply = h.http({"request_id": "x", "kind": "text", "text": "a", "k": 10_000})
    assert status == 400 and reply["error"]["field"] == "k"
    status, reply = h.http({"request_id": "x", "kind": "similar", "product_id": "never-indexed"})
    assert status == 404
    status, reply = h.http({"request_id": "x", "kind": "image", "image": {"uri": "http://169.254.169.254/x"}})
    assert status == 422 and reply["error"]["code"] == "bad_image"
    reply = h.client.search({"kind": "text", "text": "shoes", "k": 3,
                             "filters": {"category": 'shoes" or 1==1 or "'}})
    assert reply["ok"] and reply["results"] == []  # the injected value stays one literal: nothing matches
    reply = h.client.search({"kind": "nope"})
    assert reply["ok"] is False and reply["error"]["code"] == "invalid_request"
    assert h.client.search({"kind": "text", "text": "shoes", "k": 3})["ok"]  # asked before: a cache hit
    with urllib.request.urlopen(f"{h.stack.workers['query'].http}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    assert 'vitrine_queries_total{kind="text",outcome="ok",transport="kafka"}' in text
    lookups = {line.split('"')[1]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("vitrine_text_cache_lookups_total{")}
    assert lookups["hit"] >= 1 and lookups["miss"] >= 1, lookups


def _shoes(n: int = 2) -> list[int]:
    return [i for i, r in enumerate(SAMPLE) if r["category"] == "shoes"][:n]


def test_text_search_filters_by_what_it_names_and_a_misparse_never_empties_it(h: Harness) -> None:
    brand = f"b{uuid.uuid4().hex[:8]}"  # the request's own filter keeps other tests' products out
    black, white, dress = (f"{p}-{uuid.uuid4().hex[:8]}" for p in ("black", "white", "dress"))
    first, second = _shoes()
    h.upsert(black, 1, first, title="Leather running shoes", brand=brand,
             attributes={"category": "shoes", "article_type": "Sports Shoes", "colour": "Black", "gender": "Men"})
    h.upsert(white, 1, second, title="Leather running shoes", brand=brand,
             attributes={"category": "shoes", "article_type": "Sports Shoes", "colour": "White", "gender": "Men"})
    dress_i = next(i for i, r in enumerate(SAMPLE) if r["category"] == "dress")
    h.upsert(dress, 1, dress_i, title="Black party dress", brand=brand,
             attributes={"category": "dress", "article_type": "Dresses", "colour": "Black", "gender": "Women"})
    h.pub.flush()
    for pid in (black, white, dress):
        h.wait_version(pid, 1)

    reply = h.client.search({"kind": "text", "text": "mens black running shoes", "k": 1, "filters": {"brand": brand}})
    assert reply["ok"], reply
    assert [r["product_id"] for r in reply["results"]] == [black]  # colour, type and gender filter
    understood = reply["understood"]
    assert understood["filters"]["colour"] == "black" and understood["filters"]["article_type"] == "sports shoes"
    assert reply["parsed"]["gender"] == "men" and understood["relaxed"] == []

    # a page larger than the exact matches: filled by relaxing, the exact match still first
    reply = h.client.search({"kind": "text", "text": "mens black running shoes", "k": 3, "filters": {"brand": brand}})
    assert reply["ok"] and len(reply["results"]) == 3 and reply["results"][0]["product_id"] == black, reply
    assert reply["understood"]["relaxed"] and reply["results"][0]["score"] > reply["results"][1]["score"]

    # a colour none of them has: relaxed, not an empty page; the reply says so
    reply = h.client.search({"kind": "text", "text": "purple running shoes", "k": 2, "filters": {"brand": brand}})
    assert reply["ok"] and len(reply["results"]) == 2, reply
    assert "colour" in reply["understood"]["relaxed"]
    assert {r["product_id"] for r in reply["results"]} == {black, white}  # the type filter still holds


def test_photo_plus_modifier_changes_what_it_names_and_keeps_the_look(h: Harness) -> None:
    brand = f"m{uuid.uuid4().hex[:8]}"
    black, red = (f"{p}-{uuid.uuid4().hex[:8]}" for p in ("black", "red"))
    first, second = _shoes()
    h.upsert(black, 1, first, title="Running shoes", brand=brand,
             attributes={"category": "shoes", "article_type": "Sports Shoes", "colour": "Black"})
    h.upsert(red, 1, second, title="Running shoes", brand=brand,
             attributes={"category": "shoes", "article_type": "Sports Shoes", "colour": "Red"})
    h.pub.flush()
    for pid in (black, red):
        h.wait_version(pid, 1)
    photo = base64.b64encode(Path(h.image(first)[7:]).read_bytes()).decode()
    status, reply = h.http({"request_id": "m1", "kind": "image_text", "image": {"b64": photo}, "text": "but in red", "k": 1,
                            "filters": {"brand": brand}})
    assert status == 200, reply
    assert [r["product_id"] for r in reply["results"]] == [red]  # the photo is of the black pair
    assert reply["understood"]["changes"] == {"colour": "red"} and reply["parsed"]["colour"] == "red"

    status, reply = h.http({"request_id": "m2", "kind": "image_text", "image": {"b64": photo}, "text": "in purple", "k": 2,
                            "filters": {"brand": brand}})
    assert status == 200 and len(reply["results"]) == 2, reply  # no purple pair: relaxed, never empty
    assert "colour" in reply["understood"]["relaxed"]
    assert reply["results"][0]["product_id"] == black  # without the colour, the look of the photo leads


@pytest.mark.api
def test_get_by_id_and_the_openapi_document_on_the_real_worker(h: Harness) -> None:
    from workers.query.replies import ErrorReply, ProductReply, SearchReply

    live, gone = (f"{p}-{uuid.uuid4().hex[:8]}" for p in ("live", "gone"))
    h.upsert(live, 2, 3, title="Blue denim jacket", attributes={"category": "outerwear", "colour": "Blue"})
    h.upsert(gone, 1, 4)
    h.pub.delete(gone, 2)
    h.pub.flush()
    h.wait_version(live, 2)
    h.wait_version(gone, 2)

    reply = h.client.search({"kind": "get", "product_id": live})
    product = ProductReply.model_validate(reply).product
    assert (product.version, product.title, product.colour) == (2, "Blue denim jacket", "blue")
    assert product.attributes is not None and product.attributes["merchant"]["colour"] == "blue"
    assert not any(k.endswith("_vec") for k in reply["product"])

    url = h.stack.workers["query"].http
    with urllib.request.urlopen(f"{url}/products/{live}", timeout=30) as resp:
        assert resp.status == 200 and json.loads(resp.read())["product"]["product_id"] == live
    for pid in (gone, "never-published"):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{url}/products/{pid}", timeout=30)
        assert err.value.code == 404
        assert ErrorReply.model_validate(json.loads(err.value.read())).error.code == "not_found"
    assert not h.client.search({"kind": "get", "product_id": gone})["ok"]

    with urllib.request.urlopen(f"{url}/openapi.json", timeout=30) as resp:
        doc = json.loads(resp.read())
    assert doc["openapi"].startswith("3.") and "/products/{product_id}" in doc["paths"]
    status, reply = h.http({"request_id": "v", "kind": "text", "text": "blue jacket", "k": 3})
    assert status == 200 and SearchReply.model_validate(reply).results


@pytest.fixture(scope="module")
def shelf(h: Harness) -> dict[str, Any]:
    """Twelve products of one brand (the filter keeps other tests' products out): prices, colours, stock."""
    from collections import Counter

    brand = f"s{uuid.uuid4().hex[:8]}"
    colours = ["Black", "Black", "Red", "Blue", "Black", "White", "Red", "Blue", "Green", "Black", "White", "Red"]
    prices = [12.0, 80.0, 45.0, 30.0, 250.0, 19.5, 60.0, 99.0, 5.0, 45.0, 150.0, 75.0]
    products = {}
    for i, (colour, price) in enumerate(zip(colours, prices)):
        pid = f"shelf-{i}-{uuid.uuid4().hex[:6]}"
        row = SAMPLE[i % len(SAMPLE)]
        h.upsert(pid, 1, i, title=f"Everyday {row['title']}", brand=brand, price=price, in_stock=i % 3 != 0,
                 attributes={"category": row["category"], "colour": colour})
        products[pid] = {"price": price, "colour": colour.lower(), "category": row["category"], "in_stock": i % 3 != 0}
    h.pub.flush()
    for pid in products:
        h.wait_version(pid, 1)
    return {"brand": brand, "products": products,
            "colours": Counter(p["colour"] for p in products.values()),
            "categories": Counter(p["category"] for p in products.values())}


def _pages(h: Harness, body: dict[str, Any], k: int, pages: int) -> list[dict[str, Any]]:
    from workers.query.replies import SearchReply

    out = []
    for n in range(pages):
        reply = h.client.search({**body, "k": k, "offset": n * k})
        assert reply["ok"], reply
        SearchReply.model_validate(reply)
        out.append(reply)
    return out


@pytest.mark.api
def test_pages_neither_repeat_nor_skip_and_sorting_covers_the_relevant_set(h: Harness, shelf: dict[str, Any]) -> None:
    body = {"kind": "text", "text": "everyday", "filters": {"brand": shelf["brand"]}}
    pages = _pages(h, body, 5, 3)
    assert pages[0]["understood"]["filters"] == {}  # nothing parsed: the brand filter alone defines the set
    ids = [r["product_id"] for p in pages for r in p["results"]]
    assert len(ids) == len(set(ids)) == 12 and set(ids) == set(shelf["products"])  # no repeat, no skip
    assert [p["page"]["more"] for p in pages] == [True, True, False] and pages[0]["page"]["relevant"] == 12
    scores = [r["score"] for p in pages for r in p["results"]]
    assert scores == sorted(scores, reverse=True)  # one ranking, cut into pages

    cheapest = sorted(shelf["products"].values(), key=lambda p: p["price"])
    pages = _pages(h, {**body, "sort": "price_asc"}, 4, 3)
    prices = [r["price"] for p in pages for r in p["results"]]
    assert prices == [p["price"] for p in cheapest]  # the cheapest of the whole set first, not of a page
    first = h.client.search({**body, "sort": "price_desc", "k": 2})
    assert [r["price"] for r in first["results"]] == [250.0, 150.0]
    stock = h.client.search({**body, "sort": "in_stock_first", "k": 12})
    flags = [r["in_stock"] for r in stock["results"]]
    assert flags == sorted(flags, reverse=True) and flags.count(False) == 4

    reply = h.client.search({**body, "k": 10, "offset": 195})
    assert not reply["ok"] and reply["error"]["field"] == "offset"


@pytest.mark.api
def test_facets_equal_a_brute_force_count_over_the_filter(h: Harness, shelf: dict[str, Any]) -> None:
    reply = h.client.search({"kind": "similar", "product_id": next(iter(shelf["products"])), "k": 3,
                             "filters": {"brand": shelf["brand"]}, "facets": ["colour", "category", "price"]})
    assert reply["ok"], reply
    facets = reply["facets"]
    assert facets["exact"] and facets["over"] == "filters" and facets["counted_over"] == 12  # the product itself too
    assert {c["value"]: c["count"] for c in facets["counts"]["colour"]} == dict(shelf["colours"])
    assert {c["value"]: c["count"] for c in facets["counts"]["category"]} == dict(shelf["categories"])
    bands = {c["value"]: c["count"] for c in facets["counts"]["price"]}
    prices = [p["price"] for p in shelf["products"].values()]
    assert bands == {"0-25": sum(p < 25 for p in prices), "25-50": sum(25 <= p < 50 for p in prices),
                     "50-100": sum(50 <= p < 100 for p in prices), "100-200": sum(100 <= p < 200 for p in prices),
                     "200-500": sum(200 <= p < 500 for p in prices), "500+": 0}
    cheap_black = h.client.search({"kind": "text", "text": "everyday", "k": 1, "facets": ["colour"],
                                   "filters": {"brand": shelf["brand"], "price_max": 50, "colour": "black"}})
    assert cheap_black["facets"]["counts"]["colour"] == [
        {"value": "black", "count": sum(p["colour"] == "black" and p["price"] <= 50
                                        for p in shelf["products"].values())}]


@pytest.mark.api
def test_explanations_add_up_to_the_score_on_the_real_index(h: Harness, shelf: dict[str, Any]) -> None:
    reply = h.client.search({"kind": "text", "text": "everyday red", "k": 6, "explain": True,
                             "filters": {"brand": shelf["brand"]}})
    assert reply["ok"], reply
    for hit in reply["results"]:
        parts = hit["explain"]["parts"]
        assert {"bm25", "dense"} <= set(parts) and "unexplained" not in parts, hit
        assert sum(parts.values()) == pytest.approx(hit["score"], abs=1e-4)
        assert hit["explain"]["signals"]["dense_rank"] >= 1
    photo = base64.b64encode(Path(h.image(0)[7:]).read_bytes()).decode()
    for kind, extra in (("image", {}), ("image_text", {"text": "in red"})):
        status, reply = h.http({"request_id": kind, "kind": kind, "image": {"b64": photo}, "k": 4, "explain": True,
                                "filters": {"brand": shelf["brand"]}, **extra})
        assert status == 200, reply
        for hit in reply["results"]:
            parts = hit["explain"]["parts"]
            assert "visual" in parts and "unexplained" not in parts, hit
            assert sum(parts.values()) == pytest.approx(hit["score"], abs=1e-4)


@pytest.mark.api
def test_every_image_is_searchable_and_a_shrinking_upsert_leaves_no_orphan(h: Harness) -> None:
    brand = f"i{uuid.uuid4().hex[:8]}"
    multi, other = (f"{p}-{uuid.uuid4().hex[:8]}" for p in ("multi", "other"))
    front, back, third, elsewhere = 0, 7, 11, 3
    h.upsert(multi, 1, front, brand=brand, images=[h.image(front), h.image(back), h.image(third)])
    h.upsert(other, 1, elsewhere, brand=brand)
    h.pub.flush()
    h.wait_version(multi, 1)
    h.wait_version(other, 1)

    def rows(pid: str) -> list[dict[str, Any]]:
        return h.index._c().query(h.index.collection, filter=f'item == "{pid}"',
                                  output_fields=["image_index", "version", "deleted", "price", "image_uri"])

    assert sorted(r["image_index"] for r in rows(multi)) == [0, 1, 2]
    photo = base64.b64encode(Path(h.image(back)[7:]).read_bytes()).decode()
    status, reply = h.http({"request_id": "b", "kind": "image", "image": {"b64": photo}, "k": 5,
                            "filters": {"brand": brand}})
    assert status == 200, reply
    ids = [r["product_id"] for r in reply["results"]]
    assert ids[0] == multi and ids.count(multi) == 1, ids  # found by its second photo, once
    assert reply["results"][0]["image_uri"] == h.image(back) and reply["results"][0]["image_index"] == 1
    product = h.client.search({"kind": "get", "product_id": multi})["product"]
    assert product["images"] == [h.image(front), h.image(back), h.image(third)] and product["image_count"] == 3
    # the modifier's fusion reads product rows: its explanation must too, whichever image matches best
    status, reply = h.http({"request_id": "e", "kind": "image_text", "image": {"b64": photo}, "text": "for women",
                            "k": 2, "explain": True, "filters": {"brand": brand}})
    assert status == 200 and reply["understood"]["colour_kept"], reply
    for hit in reply["results"]:
        assert "unexplained" not in hit["explain"]["parts"], hit
        assert sum(hit["explain"]["parts"].values()) == pytest.approx(hit["score"], abs=1e-4)

    h.pub.patch(multi, 2, price=7.5)
    h.pub.flush()
    h.wait_version(multi, 2)
    assert {(r["version"], r["price"]) for r in rows(multi)} == {(2, 7.5)}  # every image row patched

    h.upsert(multi, 3, front, brand=brand, images=[h.image(front)])  # fewer images
    h.pub.flush()
    h.wait_version(multi, 3)
    assert [(r["image_index"], r["version"]) for r in rows(multi)] == [(0, 3)]  # no orphan image row
    status, reply = h.http({"request_id": "b2", "kind": "image", "image": {"b64": photo}, "k": 5,
                            "filters": {"brand": brand}})
    assert status == 200 and all(r.get("image_index", 0) == 0 for r in reply["results"]), reply

    h.upsert(multi, 4, front, brand=brand, images=[h.image(front), h.image(back)])
    h.pub.delete(multi, 5)
    h.pub.flush()
    h.wait_version(multi, 5)
    assert [(r["image_index"], r["deleted"]) for r in rows(multi)] == [(0, True)]  # the tombstone alone


@pytest.fixture(scope="module")
def wardrobe(h: Harness) -> dict[str, Any]:
    """Products of one brand (the filter keeps other tests' products out) in five categories, four
    each: half in stock, prices 10 to 200."""
    brand = f"w{uuid.uuid4().hex[:8]}"
    products: dict[str, dict[str, Any]] = {}
    for cat in ("top", "pants", "shoes", "outerwear", "skirt"):
        rows = [i for i, r in enumerate(SAMPLE) if r["category"] == cat][:4]
        for j, i in enumerate(rows):
            pid = f"look-{cat}{j}-{uuid.uuid4().hex[:6]}"
            price, in_stock = 10.0 + 60 * j, j % 2 == 0
            h.upsert(pid, 1, i, brand=brand, price=price, in_stock=in_stock, attributes={"category": cat})
            products[pid] = {"category": cat, "price": price, "in_stock": in_stock, "image": i}
    h.pub.flush()
    for pid in products:
        h.wait_version(pid, 1)
    return {"brand": brand, "products": products}


def test_complete_look_of_a_product_over_kafka_and_http_on_the_real_index(
        h: Harness, wardrobe: dict[str, Any]) -> None:
    from workers.query.replies import LookReply

    products = wardrobe["products"]
    top = next(p for p, r in products.items() if r["category"] == "top")
    assert h.row(top, vectors=True)["style_vec"] is not None  # the ingest worker wrote the style vector
    body = {"kind": "complete_look", "product_id": top, "k": 4, "filters": {"brand": wardrobe["brand"]}}
    reply = h.client.search(body)
    assert reply["ok"], reply
    LookReply.model_validate(reply)
    assert reply["look"]["defaulted"] and reply["look"]["items"] == [{"product_id": top, "category": "top"}]
    wanted = reply["look"]["categories"]
    assert "top" not in wanted and {"pants", "shoes"} <= set(wanted)
    for group in reply["complements"]:
        ids = [r["product_id"] for r in group["results"]]
        assert top not in ids and all(products[p]["category"] == group["category"] for p in ids)
        if group["category"] in {"pants", "shoes", "outerwear", "skirt"}:
            assert len(ids) == 4  # every product of the category under the brand
        scores = [r["score"] for r in group["results"]]
        assert scores == sorted(scores, reverse=True)

    status, over_http = h.http({"request_id": "look-http", **body})
    assert status == 200 and over_http["complements"] == reply["complements"]

    # the categories asked for, under stock and price filters
    reply = h.client.search({**body, "categories": ["shoes", "skirt"],
                             "filters": {"brand": wardrobe["brand"], "in_stock": True, "price_max": 100}})
    assert reply["ok"] and not reply["look"]["defaulted"], reply
    assert [g["category"] for g in reply["complements"]] == ["shoes", "skirt"]
    for group in reply["complements"]:
        expected = {p for p, r in products.items() if r["category"] == group["category"] and r["in_stock"]
                    and r["price"] <= 100}
        assert {r["product_id"] for r in group["results"]} == expected and expected

    status, bad = h.http({"request_id": "look-bad", **body, "categories": ["spaceships"]})
    assert status == 400 and bad["error"]["field"] == "categories"


def test_complete_look_of_a_photo_finds_its_garments_and_completes_them(h: Harness, wardrobe: dict[str, Any]) -> None:
    products = wardrobe["products"]
    pants = next(r["image"] for r in products.values() if r["category"] == "pants")
    photo = base64.b64encode(Path(h.image(pants)[7:]).read_bytes()).decode()
    status, reply = h.http({"request_id": "look-photo", "kind": "complete_look", "image": {"b64": photo}, "k": 3,
                            "filters": {"brand": wardrobe["brand"]}})
    assert status == 200 and reply["ok"], reply
    items = reply["look"]["items"]
    assert items and all(len(i["box"]) == 4 and i["category"] for i in items)
    present = {i["category"] for i in items}
    assert reply["complements"] and not present & set(reply["look"]["categories"])
    for group in reply["complements"]:
        assert all(products[r["product_id"]]["category"] == group["category"] for r in group["results"])
