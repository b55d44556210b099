"""EfficientNet-Lite0: strict weight load and ImageNet sanity on real catalogue photos."""

from __future__ import annotations

import pytest
import torch
from vision_testdata import load_rgb, pick

from workers.vision.efficientnet import (
    EfficientNetLite0,
    default_weights_path,
    load_efficientnet_lite0,
)

# ImageNet-1k indices (no class-name list ships offline).
JERSEY, JEAN, BACKPACK, RUNNING_SHOE, SUNGLASS, SUNGLASSES = 610, 608, 414, 770, 836, 837

EXPECTED: dict[str, set[int]] = {
    "Tshirts": {JERSEY},
    "Jeans": {JEAN},
    "Backpacks": {BACKPACK},
    "Sunglasses": {SUNGLASS, SUNGLASSES},
    "Sports Shoes": {RUNNING_SHOE},
    "Casual Shoes": {RUNNING_SHOE},
}
PER_TYPE = 6


def test_every_key_loads_strictly() -> None:
    state = torch.load(default_weights_path(), map_location="cpu", weights_only=True)
    model = EfficientNetLite0()
    assert set(model.state_dict()) == set(state)
    model.load_state_dict(state, strict=True)
    assert sum(v.numel() for v in model.parameters()) == pytest.approx(4.65e6, rel=0.02)


def test_shapes_and_same_padding() -> None:
    model = load_efficientnet_lite0()
    assert not model.training
    with torch.inference_mode():
        fmap = model.forward_features(torch.zeros(2, 3, 224, 224))
        assert fmap.shape == (2, 1280, 7, 7)
        assert model.forward_features(torch.zeros(1, 3, 225, 300)).shape == (1, 1280, 8, 10)
        assert model(torch.zeros(2, 3, 224, 224)).shape == (2, 1000)


def test_imagenet_classes_on_catalogue_photos(catalog, effnet_embedder) -> None:  # type: ignore[no-untyped-def]
    rows = [(at, r) for at in EXPECTED for r in pick(catalog, PER_TYPE, article_type=at)]
    batch = effnet_embedder.preprocess([load_rgb(r["path"]) for _, r in rows])
    classifier = load_efficientnet_lite0()  # the embedder holds the folded trunk only; this adds the ImageNet head
    with torch.inference_mode():
        probs = classifier(batch).softmax(dim=1)  # (N, 1000) float32
    top5 = probs.topk(5, dim=1).indices.tolist()
    top1 = probs.max(dim=1)
    hits: dict[str, int] = {at: 0 for at in EXPECTED}
    for (at, _), t5 in zip(rows, top5):
        hits[at] += bool(EXPECTED[at] & set(t5))
    # Casual shoes include loafers and boat shoes (other ImageNet classes): a lower bar.
    for at, n in hits.items():
        need = PER_TYPE // 2 if at == "Casual Shoes" else PER_TYPE - 1
        assert n >= need, f"{at}: expected class in top-5 for {n}/{PER_TYPE} (need {need})"
    assert float(top1.values.mean()) > 0.5


@pytest.mark.parametrize(("h", "w", "out"), [(224, 224, (7, 7)), (225, 300, (8, 10)), (97, 131, (4, 5))])
def test_fused_network_matches_the_reference(h: int, w: int, out: tuple[int, int]) -> None:
    """BatchNorm folding and the shifted-kernel 'SAME' padding change speed, not the features.

    224 pads every stride-2 convolution asymmetrically (odd totals); 225x300 and 97x131 mix even
    and odd totals per axis.
    """
    from workers.vision.fused import fuse

    model = load_efficientnet_lite0()
    fused = fuse(model)
    x = torch.randn(2, 3, h, w, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        ref, got = model.forward_features(x), fused.forward_features(x.contiguous(memory_format=torch.channels_last))
    assert got.shape == ref.shape == (2, 1280, *out)
    assert (ref - got).abs().max().item() < 1e-3
