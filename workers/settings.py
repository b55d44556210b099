"""One frozen settings object per process, read from ``VITRINE_*`` environment variables.

Built once at the entry point (``Settings()``) and passed down; library code never reads
``os.environ``. Secrets are ``SecretStr``: they print as ``**********`` and are never logged.
Every field below is documented with its default; the environment variable is ``VITRINE_`` + the
upper-cased field name (``kafka_bootstrap`` -> ``VITRINE_KAFKA_BOOTSTRAP``).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict

from streams.topics import TopicSet

#: The backbone's compute dtype a worker, ``vitrine eval`` or ``vitrine bench ingest`` may ask for
#: (``workers.vision.embedders.resolve_dtype`` resolves "auto" by the hardware).
ModelDtype = Literal["auto", "float32", "bfloat16"]
MODEL_DTYPES: tuple[str, ...] = get_args(ModelDtype)

#: Variables of the ``VITRINE_`` prefix that are not settings: set by the CLI or read by the tests.
NOT_SETTINGS = frozenset({"VITRINE_WORKER_KAFKA_RESTARTS", "VITRINE_SHARED_DATA"})
NOT_SETTINGS_PREFIXES = ("VITRINE_TEST_",)


class _UpperEnum(StrEnum):
    """A value from a fixed set, matched without regard to case (``sasl_ssl`` is ``SASL_SSL``)."""

    @classmethod
    def _missing_(cls, value: object) -> _UpperEnum | None:
        if isinstance(value, str):
            for member in cls:
                if member.value.lower() == value.strip().lower():
                    return member
        return None


class SecurityProtocol(_UpperEnum):
    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"


class SaslMechanism(_UpperEnum):
    PLAIN = "PLAIN"
    SCRAM_SHA_256 = "SCRAM-SHA-256"
    SCRAM_SHA_512 = "SCRAM-SHA-512"


class IndexType(_UpperEnum):
    """The vector index of a collection (``indexer.schema.DEFAULT_INDEX_PARAMS`` has each one's defaults)."""

    HNSW = "HNSW"
    HNSW_SQ = "HNSW_SQ"
    HNSW_PQ = "HNSW_PQ"
    IVF_FLAT = "IVF_FLAT"
    IVF_SQ8 = "IVF_SQ8"
    IVF_PQ = "IVF_PQ"
    IVF_RABITQ = "IVF_RABITQ"
    FLAT = "FLAT"


class ModelChoice(StrEnum):
    TRAINED = "trained"
    BASELINE = "baseline"


class LogLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"

    @classmethod
    def _missing_(cls, value: object) -> LogLevel | None:
        return cls.__members__.get(value.strip().upper()) if isinstance(value, str) else None


class SettingsError(ValueError):
    """A ``VITRINE_*`` variable has a value that is not allowed: ``str()`` is one line per problem,
    naming the variable, what it holds and what it may hold. Raised by ``load_settings``."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VITRINE_", frozen=True, extra="ignore")

    # Kafka
    kafka_bootstrap: str = Field("127.0.0.1:9092", description="bootstrap servers, host:port[,host:port]")
    kafka_security_protocol: SecurityProtocol = Field(
        SecurityProtocol.PLAINTEXT, description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL (any case)")
    kafka_sasl_mechanism: SaslMechanism | None = Field(None, description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 with SASL_*")
    kafka_username: str | None = Field(None, description="SASL user name")
    kafka_password: SecretStr | None = Field(None, description="SASL password (never printed)")
    kafka_ssl_cafile: Path | None = Field(None, description="CA bundle that signs the brokers' certificates (SSL, SASL_SSL)")
    topic_prefix: str = Field("vitrine", description="topic names are <prefix>.catalog.events, ...")
    partitions: int = Field(
        4, ge=1, description="partitions of each topic created by vitrine but the DLQ: the most workers of one "
        "kind that share the load")
    dlq_partitions: int = Field(
        1, ge=1, description="partitions of the DLQ topic (catalog.dlq): one keeps the dead letters in one order")
    replication_factor: int = Field(
        1, ge=1, description="replicas of each topic created by vitrine, the DLQ included (3 on a production "
        "cluster: min.insync.replicas is then 2)")
    session_timeout_s: float = Field(10.0, description="consumer group session timeout")
    commit_interval_s: float = Field(0.5, description="ingest and index: how often acknowledged offsets are committed")
    kafka_wait_s: float = Field(
        300.0, description="a worker that cannot reach Kafka (at start, or when the broker fails under a "
        "starting worker) waits this long for it, restarting in place, before it exits")

    # Milvus
    milvus_uri: str = Field("http://127.0.0.1:19530", description="Milvus (or Milvus Lite server) URI")
    milvus_token: SecretStr = Field(SecretStr(""), description="Milvus token, user:password (never printed)")
    collection_alias: str = Field("vitrine_products", description="alias that queries read")
    index_type: IndexType = Field(
        IndexType.HNSW, description="vector index: HNSW, HNSW_SQ, HNSW_PQ, IVF_FLAT, IVF_SQ8, IVF_PQ, IVF_RABITQ or "
        "FLAT (which ones a Milvus builds depends on its version); part of the collection's name")
    index_params: dict[str, Any] = Field(
        default_factory=dict, description="vector index build parameters over the type's defaults, JSON, e.g. "
        '{"M": 32}; part of the collection\'s name')
    search_params: dict[str, Any] = Field(
        default_factory=dict, description="vector search parameters over the index type's defaults, JSON, e.g. "
        '{"ef": 256} or {"nprobe": 16}')
    alias_refresh_s: float = Field(
        1.0, gt=0, description="query worker: how often it reads where the alias points (a swap is followed "
        "within this long, without a restart)")
    lexical_search: bool = Field(
        True, description="BM25 over title, brand and attributes (Milvus 2.5+ / Milvus Lite 3.x); false for "
        "a Milvus without the BM25 function (text search is then dense only)")

    # Text search (workers.query.text): how BM25 and the dense text vector are fused
    text_fusion: Literal["rrf", "weighted"] = Field(
        "rrf", description="rrf: reciprocal rank fusion (no score calibration needed); weighted: Milvus WeightedRanker")
    text_rrf_k: int = Field(60, ge=1, description="RRF constant: score = sum of 1 / (k + rank)")
    text_bm25_weight: float = Field(1.0, ge=0, description="weight of BM25 in weighted fusion; 0 = dense only")
    text_dense_weight: float = Field(1.0, ge=0, description="weight of the dense text vector in weighted fusion")

    # Query replies (workers.query.page): the relevant set that pages, sorts and facets see
    query_relevant_set: int = Field(
        200, ge=10, le=16_384, description="hits every search ranks (the relevant set); offset + k must fit in it; "
        "Milvus caps one search at 16384")
    facet_scan_limit: int = Field(
        10_000, ge=0, le=16_383, description="facets are exact counts over the filtered set up to this many rows "
        "(one Milvus query); above it they count the relevant set and say so (exact: false)")
    facet_price_bands: list[float] = Field(
        [25.0, 50.0, 100.0, 200.0, 500.0], description="edges of the price facet's bands, ascending (JSON list)")

    @field_validator("facet_price_bands")
    @classmethod
    def _ascending(cls, edges: list[float]) -> list[float]:
        if not edges or any(b <= a for a, b in zip(edges, edges[1:])) or edges[0] <= 0:
            raise ValueError("must be positive and strictly ascending, e.g. [25, 50, 100]")
        return edges

    # Object store (MinIO / S3)
    s3_endpoint: str = Field("127.0.0.1:9000", description="host:port of the S3/MinIO endpoint")
    s3_access_key: SecretStr = Field(SecretStr("minioadmin"), description="object store access key")
    s3_secret_key: SecretStr = Field(SecretStr("minioadmin"), description="object store secret key (never printed)")
    s3_secure: bool = Field(False, description="use TLS to the object store")
    s3_region: str = Field("us-east-1", description="object store region")
    s3_bucket: str = Field("vitrine-images", description="bucket the publisher uploads local images to")

    # Image fetching (guarantee 5)
    fetch_allowed_hosts: list[str] = Field(default_factory=list, description="http(s) hosts allowed; empty = none")
    fetch_allow_private: bool = Field(False, description="allow http(s) to loopback/private/link-local addresses")
    fetch_allow_file: bool = Field(False, description="allow file:// image URIs")
    fetch_file_root: Path | None = Field(None, description="file:// URIs must lie under this folder")
    fetch_max_bytes: int = Field(20_000_000, description="largest image accepted, bytes")
    fetch_max_pixels: int = Field(40_000_000, description="largest image accepted, pixels (decompression bombs)")
    fetch_timeout_s: float = Field(10.0, gt=0, description="one image fetch: longest wait, seconds")
    fetch_retries: int = Field(3, description="tries for transient fetch errors before the DLQ")
    fetch_retry_budget_s: float = Field(
        60.0, description="keep retrying transient fetch errors (object store away, 5xx) this long before the DLQ")
    fetch_concurrency: int = Field(16, ge=1, description="image fetches in flight at once, per worker")
    ingest_deletes_remembered: int = Field(
        1_000_000, description="ingest: recent deletes kept in memory to skip older events of deleted products")

    # Micro-batching
    batch_max_size: int = Field(32, description="ingest: most images per model batch")
    batch_max_wait_s: float = Field(0.02, description="ingest: longest wait to fill a batch")
    index_batch_max_size: int = Field(512, description="index writer: most records per Milvus write")
    index_batch_max_wait_s: float = Field(0.02, description="index writer: longest wait to fill a batch")
    flush_rows: int = Field(5000, description="index writer: seal fresh segments after this many writes ...")
    flush_interval_s: float = Field(120.0, description="... or this long after the last flush, if any were written")
    index_retry_budget_s: float = Field(
        300.0, description="index writer: longest a batch waits for Milvus; then the worker exits with status 75 "
        "(nothing acknowledged: its restart replays the batch)")

    # Models
    model: ModelChoice = Field(
        ModelChoice.TRAINED, description="trained: the trained heads under weights_dir; baseline: the untrained "
        "ImageNet pipeline (another model version, 1280-d)")
    weights_dir: Path | None = Field(
        None, description="trained heads to load (default: the weights shipped in workers/vision/weights); "
        "another directory is another model version (vitrine reindex --from catalog)")
    device: str = Field("cpu", pattern=r"^(cpu|cuda(:[0-9]+)?)$", description="cpu, cuda or cuda:N")
    model_dtype: ModelDtype = Field(
        "auto", description="backbone compute dtype: auto = bfloat16 on CUDA and on CPUs with AMX, float32 elsewhere")
    text_cache_size: int = Field(
        20_000, ge=0, description="text vectors of recent titles and queries kept (~1.7 KB each); 0 = off")
    decode_workers: int = Field(2, description="threads decoding images")
    model_workers: int = Field(0, description="ingest: batches in the model at once, each in its own thread; "
                               "0 = 2 on a CPU (each batch on its share of the cores), 1 on a GPU")

    def model_threads(self) -> int:
        """``model_workers`` with 0 resolved for ``device``."""
        return self.model_workers or (2 if self.device == "cpu" else 1)

    # HTTP (metrics, health, search)
    http_host: str = Field("127.0.0.1", description="address every listener binds to")
    http_port: int = Field(6066, ge=0, le=65535, description="port of /metrics, /healthz and POST /search")
    http_token: SecretStr | None = Field(None, description="bearer token required by POST /search, if set")

    # Local state
    data_dir: Path = Field(Path(".vitrine"), description="Faust table state and the embedded stack's data")
    log_level: LogLevel = Field(LogLevel.INFO, description="debug, info, warning, error or critical")
    keep_freed_memory: bool = Field(
        True, description="keep freed heap memory in the process (glibc mallopt; see workers.runtime.memory)")

    @model_validator(mode="after")
    def _file_uris_need_a_root(self) -> Settings:
        """``fetch_allow_file`` without ``fetch_file_root`` would let an event or a query read any path:
        refused, as an error of ``fetch_file_root`` (so ``load_settings`` names VITRINE_FETCH_FILE_ROOT)."""
        if self.fetch_allow_file and self.fetch_file_root is None:
            raise ValidationError.from_exception_data(type(self).__name__, [InitErrorDetails(
                type=PydanticCustomError(
                    "file_root_required", "required when VITRINE_FETCH_ALLOW_FILE is true: file:// image URIs "
                    "must lie under a folder (set VITRINE_FETCH_FILE_ROOT, or VITRINE_FETCH_ALLOW_FILE=false)"),
                loc=("fetch_file_root",), input=None)])
        return self

    @property
    def topics(self) -> TopicSet:
        return TopicSet(self.topic_prefix, self.partitions, self.replication_factor,
                        dlq_partitions=self.dlq_partitions)

    def kafka_options(self) -> dict[str, Any]:
        """kafka-python keyword arguments for security (nothing for PLAINTEXT)."""
        opts: dict[str, Any] = {}
        if self.kafka_security_protocol is not SecurityProtocol.PLAINTEXT:
            opts["security_protocol"] = self.kafka_security_protocol.value
        if self.kafka_sasl_mechanism:
            opts["sasl_mechanism"] = self.kafka_sasl_mechanism.value
            opts["sasl_plain_username"] = self.kafka_username
            opts["sasl_plain_password"] = self.kafka_password.get_secret_value() if self.kafka_password else None
        if self.kafka_ssl_cafile:
            opts["ssl_cafile"] = str(self.kafka_ssl_cafile)
        return opts


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """The ``VITRINE_*`` names in ``environ`` that are no setting (a misspelt one is silently ignored
    by pydantic-settings, so every worker reports these at start)."""
    known = {f"VITRINE_{name.upper()}" for name in Settings.model_fields}
    return sorted(k for k in environ if k.startswith("VITRINE_") and k not in known and k not in NOT_SETTINGS
                  and not k.startswith(NOT_SETTINGS_PREFIXES))


def load_settings() -> Settings:
    """``Settings()`` from the environment (at an entry point only); a bad value raises ``SettingsError``
    with one line per problem."""
    try:
        return Settings()
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = f"VITRINE_{'_'.join(str(p) for p in err['loc']).upper()}"
            value = err.get("input")
            shown = "**********" if any(s in name for s in ("PASSWORD", "TOKEN", "SECRET", "KEY")) else repr(value)
            lines.append(f"{name}={shown}: {err['msg']}")
        raise SettingsError("\n".join(lines)) from None


def describe_settings() -> str:
    """Every setting, one line each: its variable, default and description (``vitrine worker --help``)."""
    rows = []
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        if isinstance(default, SecretStr):
            default = "(secret)" if default.get_secret_value() else "''"
        elif isinstance(default, StrEnum):
            default = default.value
        rows.append(f"  VITRINE_{name.upper():<28} {default!s:<24} {field.description or ''}")
    return "\n".join(rows)

