"""The format-handler interface."""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kfp_tfserving.components.common.saved_model.tensor_spec import (  # noqa: F401 - re-exported
    ExampleFeature,
    Tensors,
    TensorSpecInfo,
)


@dataclass
class ExportOptions:
    """What the user may say about how to read and export a model (all optional)."""

    signature: str = ""  # which signature becomes serving_default when the source has none
    inputs: list[str] = field(default_factory=list)  # TF1 graphs: input tensor names
    outputs: list[str] = field(default_factory=list)  # TF1 graphs: output tensor names
    feeds: dict[str, str] = field(default_factory=dict)  # TF1 graphs: placeholder -> constant value
    allow_unsafe_deserialization: bool = False
    # The tag-set TF Serving loads (its --saved_model_tags): SavedModel sources are read from the meta graph
    # with exactly these tags, and every export serves its graph under them.
    tags: tuple[str, ...] = ("serve",)
    # Keras: "MODULE[:NAME,...]" items; each module is imported before loading (see custom_objects.py).
    custom_objects: list[str] = field(default_factory=list)


@dataclass
class LoadedModel:
    """A source model in memory, ready to export and to be compared with its export."""

    format: str
    model: Any
    inputs: list[TensorSpecInfo]
    # Runs the source model itself (not the export) on a batch; the reference for numeric parity.
    reference: Callable[[Tensors], Tensors]
    # Anything the handler needs to carry from load to export.
    extras: dict[str, Any] = field(default_factory=dict)


class FormatHandler(abc.ABC):
    """One model format: recognise it on disk, load it, export it as a servable SavedModel."""

    name: str = ""
    description: str = ""

    @abc.abstractmethod
    def detect(self, path: Path) -> Path | None:
        """The model's entry point (file or directory) when `path` holds this format, else None.

        Looks at names and magic bytes only: detection must not import TensorFlow.
        """

    @abc.abstractmethod
    def load(self, entry: Path, options: ExportOptions) -> LoadedModel:
        """Load the model found by detect(); raise FormatError with a one-line reason when it cannot."""

    @abc.abstractmethod
    def export(self, loaded: LoadedModel, export_dir: Path) -> None:
        """Write a SavedModel with a serving_default signature to export_dir, its served graph tagged
        {serve} or the tag-set the load was asked for (the exporter re-tags a lone {serve} graph)."""
