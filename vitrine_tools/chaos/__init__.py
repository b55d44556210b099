"""Proof that vitrine loses nothing: a ground-truth oracle and a chaos runner.

- ``oracle``: from the records really published (read back from ``catalog.events``) and the DLQ,
  the index the system must converge to, and a verdict on the real one (lost, stale, resurrected,
  duplicate keys, vectors of the wrong version, every record accounted for).
- ``load``: a seeded catalogue load that follows the event contract, published at-least-once.
- ``harness``: the real services and worker processes, and the faults (SIGKILL a worker, restart
  the broker on its log directory, Milvus and object-store outages).
- ``hostile``: hostile events, images, URLs and queries with the outcome each must get.
- ``runner``: ``run_chaos`` puts them together (``vitrine chaos``); ``soak`` runs a long steady load.

Imports Faust-free ``workers`` code, kafka-python and pymilvus; nothing here runs inside a worker.
"""
