"""Model formats: one handler per format behind one interface (detect / load / export)."""

from kfp_tfserving.components.common.formats.base import (
    ExportOptions,
    FormatHandler,
    LoadedModel,
    TensorSpecInfo,
)
from kfp_tfserving.components.common.formats.registry import detect_format, handler_named, known_formats

__all__ = [
    "ExportOptions",
    "FormatHandler",
    "LoadedModel",
    "TensorSpecInfo",
    "detect_format",
    "handler_named",
    "known_formats",
]
