"""Benchmarks that print figures: ``vitrine bench ingest`` and ``vitrine bench query``.

Figures are medians or whole-run rates, and every ratio is against a baseline measured in the same
process and run (these machines are shared and noisy). Reports are JSON plus PNG plots.
"""

from __future__ import annotations

__all__: list[str] = []
