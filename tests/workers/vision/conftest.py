"""Session fixtures for the vision tests: catalogue rows and loaded models (loaded once)."""

from __future__ import annotations

import pytest
from vision_testdata import data_dir, read_catalog

from workers.vision.embedders import EfficientNetEmbedder
from workers.vision.text import MiniLMTextEmbedder


@pytest.fixture(scope="session")
def catalog() -> list[dict[str, str]]:
    root = data_dir()
    if root is None:
        pytest.skip("shared data not found: set VITRINE_SHARED_DATA or provide ../shared/data")
    return read_catalog(root)


@pytest.fixture(scope="session")
def effnet_embedder() -> EfficientNetEmbedder:
    emb = EfficientNetEmbedder(device="cpu")
    emb.load()
    return emb


@pytest.fixture(scope="session")
def minilm() -> MiniLMTextEmbedder:
    emb = MiniLMTextEmbedder(device="cpu")
    emb.load()
    return emb
