"""The tooling around vitrine's workers: the dev stack (``devstack``: local services, ``vitrine up``,
the demo), ``training`` (train and evaluate the heads), ``bench`` and ``chaos`` (with soak), and the
``vitrine`` command (``cli``).

Imports ``workers``, ``indexer`` and ``streams``; nothing in ``workers`` imports this package, so
a production image needs none of it.
"""

from __future__ import annotations

__all__: list[str] = []
