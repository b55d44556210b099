"""The one place that resolves the shared data set (``../shared/data``: catalogue, real shots, street
photos, query samples; its README gives every format).

``shared_data()`` is ``$VITRINE_SHARED_DATA`` when set, else the first of ``./shared/data``,
``../shared/data`` (from the working directory) and ``<checkout>/../shared/data`` (an editable
install) that exists; else ``../shared/data``, which callers report as absent. It works the same in
a non-editable install (``pip install .``), where the package no longer sits in the checkout.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["SHARED_DATA_ENV", "shared_data"]

SHARED_DATA_ENV = "VITRINE_SHARED_DATA"
_CHECKOUT = Path(__file__).resolve().parents[1]


def shared_data() -> Path:
    configured = os.environ.get(SHARED_DATA_ENV)
    if configured:
        return Path(configured).expanduser().resolve()
    here = Path.cwd()
    for candidate in (here / "shared" / "data", here.parent / "shared" / "data", _CHECKOUT.parent / "shared" / "data"):
        if candidate.is_dir():
            return candidate.resolve()
    return (here.parent / "shared" / "data").resolve()
