"""The query process: ``parse`` (query text -> attribute filters and boosts), ``fusion`` (category
fusion of the neighbours), ``service`` (a request -> a reply, with its error table) and ``app`` (its
Faust wiring: ``search.requests`` -> ``search.responses`` and ``POST /search``)."""

from __future__ import annotations

__all__: list[str] = []
