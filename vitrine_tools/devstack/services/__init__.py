"""Real local services as child processes: Kafka, tansu, Milvus Lite, an S3 server, Prometheus.

Modules: ``process`` (the ``Service`` handle, ports, spawning, readiness), ``kafka`` (Apache Kafka and
tansu), ``stores`` (Milvus Lite, MinIO or moto, Prometheus). Import from this package.

Used by the integration tests (``tests/conftest.py``) and by the embedded stack (``vitrine up``).

Contract
--------
- Every ``start_*`` function returns only once the service *answers its own protocol*, not merely
  once its port is open: Kafka and tansu answer a kafka-python metadata request, Milvus Lite answers
  ``MilvusClient(uri).list_collections()``, the S3 server answers ``list_buckets`` with the given
  credentials, Prometheus answers ``/-/ready``. If the process dies first, or the deadline passes,
  the process is killed and :class:`ServiceStartError` is raised carrying the last lines of its log.
- Everything binds to 127.0.0.1 on a port below 32768 (the Linux ephemeral range starts at 32768,
  so ports picked by the kernel are never used).
- Each service runs in its own process group (``start_new_session``); :meth:`Service.stop` sends
  SIGTERM to the group, then SIGKILL after ``timeout`` seconds, so helper children die too.
  :meth:`Service.kill` sends SIGKILL at once (crash tests).
- Services still running when the parent interpreter exits normally are stopped (``atexit``).
- Output (stdout and stderr) goes to ``Service.log_path``; nothing is printed.
- Durable state lives under the ``data_dir`` given by the caller. ``start_kafka`` formats a fresh
  directory and reuses a formatted one as is, on the same ports as before when ``port`` is None, so
  a broker restarted on the same directory keeps its topics, records and committed offsets and
  clients reconnect to the same address. tansu keeps everything in memory (it is the no-Java
  embedded broker, not a durable one); the moto S3 fallback keeps objects in memory too.
- No environment is read here: the environment of a child is ``os.environ`` plus the explicit
  overrides each function documents.
"""

from vitrine_tools.devstack.services.kafka import find_tansu_binary, kafka_answers, start_kafka, start_tansu
from vitrine_tools.devstack.services.process import (
    KAFKA_LIBS_DIR,
    KafkaService,
    S3Service,
    Service,
    ServiceStartError,
    free_port,
    wait_for_port,
)
from vitrine_tools.devstack.services.stores import (
    find_minio_binary,
    start_milvus_lite,
    start_prometheus,
    start_s3,
)

__all__ = [
    "KAFKA_LIBS_DIR",
    "KafkaService",
    "S3Service",
    "Service",
    "ServiceStartError",
    "find_minio_binary",
    "find_tansu_binary",
    "free_port",
    "kafka_answers",
    "start_kafka",
    "start_milvus_lite",
    "start_prometheus",
    "start_s3",
    "start_tansu",
    "wait_for_port",
]
