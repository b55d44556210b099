"""The compatibility head's contract: shapes, dtype, unit rows, determinism, type conditioning, the
serving transform (``query_vector``) equal to the masked inner product, the outfit score, and the
weights file (round trip, version = digest, the shipped head)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from workers.vision.compat import (
    COLOUR_DIM,
    CompatHead,
    category_ids,
    garment_colour,
    load_compat,
    save_compat,
)
from workers.vision.taxonomy import GROUPS

WEIGHTS = Path(__file__).resolve().parents[3] / "workers" / "vision" / "weights"


@pytest.fixture(scope="module", params=[1, 2], ids=["one-member", "two-members"])
def head(request: pytest.FixtureRequest) -> CompatHead:
    """A small head with fitted whitening and random (non-uniform) pair masks."""
    torch.manual_seed(0)
    h = CompatHead(dim=16, hidden=32, pcs=8, members=request.param, cls_pcs=8)
    with torch.no_grad():
        h.whiten.fit(torch.randn(64, 1280))
        h.cls_whiten.fit(torch.randn(64, 1280))
        h.pair_logits.normal_(0, 1.0)
    return h.eval()


@pytest.fixture(scope="module")
def feats() -> np.ndarray:
    return np.random.default_rng(1).normal(size=(6, 1280)).astype(np.float32)


CATS = ["top", "pants", "shoes", "bag", "dress", "outerwear"]


def test_embed_shape_dtype_unit_rows(head: CompatHead, feats: np.ndarray) -> None:
    v = head.embed(feats, CATS)
    assert v.shape == (6, 16) and v.dtype == np.float32 and head.feature_dim == 1280
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert head.embed(feats[:0], []).shape == (0, 16)


def test_embed_is_deterministic_and_leaves_the_mode(head: CompatHead, feats: np.ndarray) -> None:
    head.train()  # dropout on: embed must still be eval-mode and give the same rows
    try:
        a, b = head.embed(feats, CATS), head.embed(torch.from_numpy(feats), category_ids(CATS))
        assert head.training
    finally:
        head.eval()
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(head.embed(feats[:2], CATS[:2]), a[:2], atol=1e-6)


def test_embed_depends_on_the_category(head: CompatHead, feats: np.ndarray) -> None:
    a = head.embed(feats[:1], ["top"])
    b = head.embed(feats[:1], ["shoes"])
    assert not np.allclose(a, b)


def test_embed_refuses_bad_inputs(head: CompatHead, feats: np.ndarray) -> None:
    with pytest.raises(ValueError):
        head.embed(feats[:, :100], CATS)
    with pytest.raises(ValueError):
        head.embed(feats, CATS[:2])
    with pytest.raises(KeyError):
        category_ids(["not-a-category"])


def test_members_fill_blocks_and_compat_is_their_mean(head: CompatHead, feats: np.ndarray) -> None:
    n = len(head.members)
    v = head.embed(feats[:2], ["top", "pants"])
    blocks = v.reshape(2, n, -1)
    np.testing.assert_allclose(np.linalg.norm(blocks, axis=2), 1 / np.sqrt(n), atol=1e-5)
    w = head.weights_for("top", "pants").reshape(n, -1)
    per_member = (w * blocks[0] * blocks[1]).sum(1) * n  # each member's own compatibility
    assert float(head.query_vector(v[0], "top", "pants") @ v[1]) == pytest.approx(float(per_member.mean()), abs=1e-5)
    with pytest.raises(ValueError):
        CompatHead(dim=10, members=3)


def test_category_ids_accept_names_and_indices() -> None:
    assert category_ids(["bag", 3]).tolist() == [GROUPS["category"].index("bag"), 3]
    assert category_ids(np.array([1, 2])).dtype == torch.int64


def _mask(head: CompatHead, a: str, b: str) -> np.ndarray:
    """m[a, b] computed from the parameters directly: sqrt of the softplus, normalised per member block."""
    i, j = GROUPS["category"].index(a), GROUPS["category"].index(b)
    raw = torch.nn.functional.softplus(head.pair_logits[head.pair_index[i, j]]).detach().numpy()
    blocks = raw.reshape(len(head.members), -1)
    return np.sqrt(blocks / blocks.mean(1, keepdims=True)).ravel()


def test_query_vector_equals_the_masked_inner_product(head: CompatHead, feats: np.ndarray) -> None:
    v = head.embed(feats[:2], ["top", "pants"])
    m = _mask(head, "top", "pants")
    masked = float(np.dot(m * v[0], m * v[1]))
    q = head.query_vector(v[0], "top", "pants")
    assert q.dtype == np.float32 and q.shape == (16,)
    assert float(q @ v[1]) == pytest.approx(masked, abs=1e-5)
    # symmetric in the pair, and the batch form matches the single one
    assert float(head.query_vector(v[1], "pants", "top") @ v[0]) == pytest.approx(masked, abs=1e-5)
    np.testing.assert_allclose(head.query_vector(v, "top", "pants")[0], q, atol=1e-7)
    ca, cb = category_ids(["top"]), category_ids(["pants"])
    with torch.no_grad():
        t = head.compat(torch.from_numpy(v[:1]), ca, torch.from_numpy(v[1:2]), cb)
    assert float(t[0]) == pytest.approx(masked, abs=1e-5)


def test_the_same_items_score_differently_under_other_category_pairs(head: CompatHead, feats: np.ndarray) -> None:
    v = head.embed(feats[:2], ["top", "pants"])
    s1 = float(head.query_vector(v[0], "top", "pants") @ v[1])
    s2 = float(head.query_vector(v[0], "shoes", "bag") @ v[1])
    assert abs(s1 - s2) > 1e-3
    assert not np.allclose(head.weights_for("top", "pants"), head.weights_for("shoes", "bag"))
    assert (head.weights_for("top", "pants") >= 0).all()
    assert head.weights_for("top", "pants").mean() == pytest.approx(1.0, abs=1e-5)


def test_outfit_score_is_the_mean_pairwise_compatibility(head: CompatHead, feats: np.ndarray) -> None:
    cats = CATS[:4]
    v = head.embed(feats[:4], cats)
    pairs = [(i, j) for i in range(4) for j in range(i + 1, 4)]
    want = np.mean([head.query_vector(v[i], cats[i], cats[j]) @ v[j] for i, j in pairs])
    assert head.outfit_score(v, cats) == pytest.approx(float(want), abs=1e-5)
    with pytest.raises(ValueError):
        head.outfit_score(v[:1], cats[:1])


def test_save_load_round_trip(head: CompatHead, feats: np.ndarray, tmp_path: Path) -> None:
    head.complements = {"top": ("pants", "shoes")}
    save_compat(head, tmp_path / "compat.pt")
    loaded = load_compat(tmp_path)
    assert loaded.version == hashlib.sha256((tmp_path / "compat.pt").read_bytes()).hexdigest()[:10]
    assert loaded.name == "style-compat" and not loaded.training
    assert loaded.complements_of("top") == ("pants", "shoes") and loaded.complements_of("hat") == ()
    np.testing.assert_allclose(loaded.embed(feats, CATS), head.embed(feats, CATS), atol=5e-3)  # float16 on disk
    torch.save({"kind": "tagger"}, tmp_path / "other.pt")
    with pytest.raises(ValueError):
        load_compat(tmp_path, file="other.pt")
    with pytest.raises(FileNotFoundError):
        load_compat(tmp_path / "nowhere")


@pytest.mark.skipif(not (WEIGHTS / "compat.pt").is_file(), reason="no shipped compat.pt (run `vitrine train compat`)")
def test_the_shipped_head_matches_its_record() -> None:
    head = load_compat(WEIGHTS)
    record = json.loads((WEIGHTS / "compat.json").read_text())
    assert record["version"] == head.version and record["dim"] == head.config["dim"]
    assert record["feature_dim"] == head.feature_dim
    assert head.complements_of("top") and set(head.complements_of("top")) <= set(GROUPS["category"])
    feats = np.abs(np.random.default_rng(0).normal(size=(3, head.feature_dim))).astype(np.float32)
    v = head.embed(feats, ["top", "pants", "shoes"])
    assert v.shape == (3, record["dim"])
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert head.predict_category(feats).shape == (3,)


def test_a_head_with_a_colour_histogram_takes_it_after_the_pooled_features() -> None:
    torch.manual_seed(0)
    h = CompatHead(dim=8, hidden=16, pcs=8, hist_dim=64, cls_pcs=8)
    assert h.feature_dim == 1344
    x = np.random.default_rng(0).normal(size=(3, 1344)).astype(np.float32)
    a = h.embed(x, ["top", "pants", "bag"])
    x2 = x.copy()
    x2[:, 1280:] += 1.0  # another colour: another style vector
    assert not np.allclose(a, h.embed(x2, ["top", "pants", "bag"]))
    with pytest.raises(ValueError):
        h.embed(x[:, :1280], ["top", "pants", "bag"])


def test_garment_colour_reads_the_garment_not_the_white_background() -> None:
    red = np.full((60, 40, 3), 255, np.uint8)
    red[10:50, 10:30] = (200, 25, 35)  # a red garment cut out onto white
    small = np.full((200, 300, 3), 255, np.uint8)
    small[20:180, 100:200] = (200, 25, 35)  # the same colour, another size and margin
    blue = red.copy()
    blue[10:50, 10:30] = (35, 95, 200)
    g = garment_colour([red, small, blue])
    assert g.shape == (3, COLOUR_DIM) and g.dtype == np.float32 and np.isfinite(g).all()
    np.testing.assert_allclose(g[0, :3], g[1, :3], atol=0.05)  # mean Lab: background and size do not enter
    assert g[0, 7:35].argmax() == g[1, 7:35].argmax()  # the same dominant bin of the coarse histogram
    assert np.abs(g[0] - g[2]).max() > 0.3
    assert g[0, 1] > 0.4  # mean a* of a red garment, the white not averaged in
    white = np.full((32, 32, 3), 255, np.uint8)  # all background: every pixel counts
    assert np.isfinite(garment_colour([white])).all()


def test_a_head_with_garment_colour_takes_the_crops_and_round_trips(tmp_path: Path) -> None:
    torch.manual_seed(0)
    h = CompatHead(dim=8, hidden=16, pcs=8, hist_dim=64, cls_pcs=8, colour_dim=COLOUR_DIM)
    assert h.feature_dim == 1344 + COLOUR_DIM and h.colour_dim == COLOUR_DIM
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, size=(20 + 5 * i, 30, 3), dtype=np.uint8) for i in range(3)]
    pooled, hist = rng.normal(size=(3, 1280)).astype(np.float32), np.abs(rng.normal(size=(3, 64))).astype(np.float32)
    x = h.style_inputs(pooled, hist, crops)
    assert x.shape == (3, h.feature_dim)
    np.testing.assert_array_equal(x[:, 1344:], garment_colour(crops))
    with pytest.raises(ValueError):
        h.style_inputs(pooled, hist)  # the crops are needed
    save_compat(h, tmp_path / "compat.pt")
    back = load_compat(tmp_path)
    assert back.colour_dim == COLOUR_DIM
    np.testing.assert_allclose(back.embed(x, ["top", "pants", "bag"]), h.embed(x, ["top", "pants", "bag"]), atol=2e-2)
    assert CompatHead(dim=8, hidden=16, pcs=8, hist_dim=64, cls_pcs=8).colour_dim == 0  # older heads: none
