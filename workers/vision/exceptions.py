"""Errors raised by ``workers.vision``.

Every error derives from :class:`VisionError`, so a worker can catch the whole family at the
edge. Classes are named by condition and carry a machine-readable ``reason`` slug where the
caller routes on it (a DLQ record, an error reply).
"""

from __future__ import annotations

__all__ = ["ImageDecodeError", "InvalidImageError", "ModelNotLoadedError", "ModelWeightsMissing", "StyleUnavailable",
           "VisionError"]


class VisionError(Exception):
    """Root of every error raised by ``workers.vision``."""


class ImageDecodeError(VisionError):
    """The bytes are not an image this package will decode.

    Raised by :func:`workers.vision.decode.decode_image`. The input is bad, not the worker:
    retrying cannot help, so an ingest worker sends the event to the DLQ with ``reason`` and a
    query worker replies with an error.

    ``reason`` is one of:
      - ``"empty"``: zero bytes.
      - ``"unsupported_format"``: not a recognised format (JPEG, PNG, GIF, WebP, BMP, TIFF).
      - ``"corrupt"``: recognised, but truncated or malformed.
      - ``"too_many_pixels"``: the header declares more pixels than allowed (decompression bomb);
        refused before any pixel is decoded.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class InvalidImageError(VisionError, ValueError):
    """An array handed to a model is not an (H, W, 3) uint8 RGB image with H, W >= 1.

    This is a programming error in the caller (decode with ``decode_image`` first).
    """


class ModelNotLoadedError(VisionError, RuntimeError):
    """A model was used before its ``load()`` was called.

    Construction is cheap and loads nothing; call ``load()`` (or ``VisionPipeline.load()``) once
    at start-up, before the first batch.
    """

    def __init__(self, name: str) -> None:
        super().__init__(f"{name}: weights are not loaded; call load() first")
        self.name = name


class ModelWeightsMissing(VisionError, FileNotFoundError):
    """The trained heads' weights (or their manifest) are missing or incomplete. Raised by
    ``workers.vision.factory.production_pipeline``; ``missing`` names the heads. A worker refuses to
    start: reinstall vitrine or run ``vitrine train``."""

    def __init__(self, message: str, *, missing: list[str]) -> None:
        self.missing = missing
        super().__init__(message)


class StyleUnavailable(VisionError):
    """These models have no style (compatibility) head, so nothing can complete a look: the
    baseline models, or a collection built before the head shipped. A query worker answers
    ``complete_look`` with an error reply (``style_unavailable``); every other query works."""
