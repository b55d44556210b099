"""The clients a worker builds from its ``Settings``: the fetch policy, the object-store client, the
index layout of its models, and opening the collection (retried while Milvus is away)."""

from __future__ import annotations

import asyncio
from typing import Any

from indexer.exceptions import IndexUnavailable
from indexer.schema import IndexLayout
from indexer.store import ProductIndex, TextFusion
from workers.fetch import FetchPolicy
from workers.runtime.reading import retry_until_done
from workers.settings import Settings
from workers.vision.pipeline import VisionPipeline

__all__ = ["fetch_policy", "layout_for", "open_index", "product_index", "s3_client", "text_fusion", "vision_for"]


def fetch_policy(settings: Settings) -> FetchPolicy:
    return FetchPolicy(
        allowed_hosts=tuple(h.lower() for h in settings.fetch_allowed_hosts),
        allow_private=settings.fetch_allow_private, allow_file=settings.fetch_allow_file,
        file_root=settings.fetch_file_root, max_bytes=settings.fetch_max_bytes,
        timeout_s=settings.fetch_timeout_s, retries=settings.fetch_retries, concurrency=settings.fetch_concurrency,
        retry_budget_s=settings.fetch_retry_budget_s,
    )


def s3_client(settings: Settings) -> Any:
    from minio import Minio

    return Minio(settings.s3_endpoint, access_key=settings.s3_access_key.get_secret_value(),
                 secret_key=settings.s3_secret_key.get_secret_value(), secure=settings.s3_secure,
                 region=settings.s3_region)


def layout_for(settings: Settings, vision: VisionPipeline) -> IndexLayout:
    """The collection layout for ``vision``'s model version and dimensions and the configured index type."""
    return IndexLayout(
        model_version=vision.model_version, alias=settings.collection_alias, index_type=str(settings.index_type),
        index_params=dict(settings.index_params), search_overrides=dict(settings.search_params),
        lexical=settings.lexical_search,
        dims=vision.dims(),
    )


def vision_for(settings: Settings) -> VisionPipeline:
    """The models ``settings`` name (``model``, ``weights_dir``), not loaded yet; ``ModelWeightsMissing``
    when trained weights are missing (never a silent fallback to another model version)."""
    from workers.vision.factory import baseline_pipeline, production_pipeline
    from workers.vision.trained import WEIGHTS_DIR

    if settings.model == "baseline":
        return baseline_pipeline(device=settings.device, dtype=settings.model_dtype, text_cache=settings.text_cache_size)
    return production_pipeline(device=settings.device, dtype=settings.model_dtype, text_cache=settings.text_cache_size,
                               weights_dir=settings.weights_dir or WEIGHTS_DIR)


def text_fusion(settings: Settings) -> TextFusion:
    return TextFusion(method=settings.text_fusion, rrf_k=settings.text_rrf_k, bm25_weight=settings.text_bm25_weight,
                      dense_weight=settings.text_dense_weight)


def product_index(settings: Settings, layout: IndexLayout) -> ProductIndex:
    return ProductIndex(settings.milvus_uri, layout, token=settings.milvus_token.get_secret_value())


async def open_index(index: ProductIndex, *, create: bool, via_alias: bool = False) -> None:
    """``index.start`` in a thread, retried with back-off for as long as Milvus is unavailable."""
    await retry_until_done(lambda: asyncio.to_thread(index.start, create=create, via_alias=via_alias),
                           "opening the Milvus collection", retry_on=IndexUnavailable)
