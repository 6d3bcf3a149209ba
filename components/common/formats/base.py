"""The format-handler interface."""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kfp_tfserving.components.common.saved_model.tags import SERVE, Tags
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
    tags: Tags = SERVE
    # Keras: "MODULE[:NAME,...]" items; each module is imported before loading (see custom_objects.py).
    custom_objects: list[str] = field(default_factory=list)


@dataclass
class SavedModelSource:
    """What a SavedModel-shaped source carries from load to export: where it is and what it serves."""

    entry: Path
    tags: Tags  # the meta graph read from the source
    serving_signature: str = ""  # the signature that becomes serving_default
    served_tags: Tags | None = None  # the tag-set the export serves it under (None: `tags`)
    signatures: list[str] = field(default_factory=list)  # every signature the export keeps
    tf1: bool = False  # written by TF1's Builder: copied and edited, never re-saved
    # Why TF Serving could not serve it as it is, so it is re-saved from TF2's loader ("": copied as it is).
    repair: str = ""
    # A TF2 hub-style module without signatures: its __call__, traced as serving_default.
    callable: Any = None


@dataclass
class LoadedModel:
    """A source model in memory, ready to export and to be compared with its export."""

    format: str
    model: Any
    inputs: list[TensorSpecInfo]
    # Runs the source model itself (not the export) on a batch; the reference for numeric parity.
    reference: Callable[[Tensors], Tensors]
    saved_model: SavedModelSource | None = None  # SavedModel-shaped sources
    plan: Any = None  # TF1 graphs and checkpoints: the tf1_plan.ExportPlan the export writes
    compute_dtype: str = "float32"  # Keras mixed precision: the parity tolerance follows it
    loaded_with: str = ""  # Keras files Keras 3 could not load: "tf_keras"
    # A handler that delegated its load (TFX Trainer output, a TF2 SavedModel in a TF1 layout) names the
    # handler whose export() writes the model.
    export_with: str = ""

    @property
    def repaired(self) -> str:
        """Why the export re-saved the source instead of copying it ("" when it did not)."""
        return self.saved_model.repair if self.saved_model else ""


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
