"""Load the source model with its format's handler, export a SavedModel, prove numeric parity."""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from kfp_tfserving.components.common.errors import UserError, naming_the_source, reports_errors
from kfp_tfserving.components.common.formats import ExportOptions, detect_format, handler_named
from kfp_tfserving.components.common.formats.base import TensorSpecInfo
from kfp_tfserving.components.common.formats.graph_vetting import vet_source
from kfp_tfserving.components.common.formats.keras_precision import HALF_DTYPES
from kfp_tfserving.components.common.formats.saved_model_edit import serve_under
from kfp_tfserving.components.common.formats.saved_model_io import (
    SERVING_DEFAULT,
    parse_tags,
    read_signatures,
    tag_set_text,
)
from kfp_tfserving.components.common.formats.string_inputs import described_inputs
from kfp_tfserving.components.common.heap import release_freed_memory
from kfp_tfserving.components.common.samples import generate_inputs, load_sample
from kfp_tfserving.components.common.serving_oracle import (
    load_served,
    servability_problem,
    specific_line,
)
from kfp_tfserving.components.common.storage import storage_for
from kfp_tfserving.components.export_savedmodel.parity import (
    as_metadata,
    compare_outputs,
    require_parity,
    tolerance_for,
)


def parse_feeds(feeds: list[str] | None) -> dict[str, str]:
    out = {}
    for item in feeds or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UserError(f"--feed '{item}': expected NAME=VALUE", "for example --feed keep_prob=1.0")
        out[name.strip()] = value.strip()
    return out


def _sample_inputs(sample_uri: str, specs: list[TensorSpecInfo]) -> dict:
    if not sample_uri:
        return generate_inputs(specs)
    with tempfile.TemporaryDirectory() as tmp:
        local = storage_for(sample_uri).download(sample_uri, Path(tmp) / Path(sample_uri).name)
        return load_sample(local, specs, label=sample_uri)


def _input_fix(sample_uri: str) -> str:
    if sample_uri:
        return f"check that the sample {sample_uri} holds inputs the model accepts (--sample)"
    return "pass --sample with a real request (an .npz or TF Serving JSON) the model accepts"


def _reference_outputs(loaded, batch: dict, sample_uri: str) -> dict:
    """The source model's answer; its TensorFlow failure as one line naming what to do."""
    try:
        return loaded.reference(batch)
    except UserError:
        raise
    except Exception as err:
        on = f"the sample {sample_uri}" if sample_uri else "generated inputs"
        raise UserError(
            f"the source model fails on {on}: {specific_line(err)}", _input_fix(sample_uri)
        ) from None


@contextlib.contextmanager
def _timed(phase: str, timings: dict[str, float]) -> Iterator[None]:
    start = time.perf_counter()
    yield
    timings[phase] = round(time.perf_counter() - start, 3)
    print(f"{phase}: {timings[phase]:.2f} s", flush=True)


def _served_outputs(export_dir: Path, batch: dict, tags: tuple[str, ...]) -> dict:
    """The export's answer to the batch as TF Serving computes it (TF1 session, saver_def restore).
    The source model already ran this batch, so a failure here is the export's, not the inputs'."""
    with load_served(export_dir, tags=tags, replay_warmup=False) as served:
        problem = servability_problem(served)
        if problem:
            raise UserError(f"{export_dir}: the export is not servable: {problem}", "report this as a bug")
        return served.predict(batch)


def export_model(
    model_dir: Path,
    model_metadata: dict[str, Any],
    export_dir: Path,
    export_metadata: dict[str, Any],
    *,
    signature: str = "",
    inputs: list[str] | None = None,
    outputs: list[str] | None = None,
    feeds: list[str] | None = None,
    allow_unsafe_deserialization: bool = False,
    sample_uri: str = "",
    parity_atol: float = 1e-4,
    parity_rtol: float = 1e-4,
    tags: str = "serve",
    custom_objects: list[str] | None = None,
) -> dict[str, Any]:
    """Fill the export step's Model artifact; returns the parity figures per output.

    tags: the tag-set TF Serving loads ("serve,gpu"): read from a SavedModel source, served by the export.
    custom_objects: Keras `MODULE[:NAME,...]` items imported before loading (Python-defined layers).
    """
    options = ExportOptions(
        signature=signature,
        inputs=[n for n in inputs or [] if n],
        outputs=[n for n in outputs or [] if n],
        feeds=parse_feeds(feeds),
        allow_unsafe_deserialization=allow_unsafe_deserialization,
        tags=parse_tags(tags),
        custom_objects=[c for c in custom_objects or [] if c.strip()],
    )
    if model_metadata.get("format") and model_metadata.get("entry"):
        handler = handler_named(model_metadata["format"])
        entry = model_dir / model_metadata["entry"]
    else:  # a Model artifact from outside this project: detect it here
        handler, entry = detect_format(model_dir)
    timings: dict[str, float] = {}
    # The load step put the source at model_dir/<first part of entry>.
    entry_parts = Path(model_metadata.get("entry", "")).parts
    copy = model_dir / entry_parts[0] if entry_parts else model_dir
    with _timed("load", timings), naming_the_source(copy, model_metadata.get("source_uri", "")):
        vet_source(entry)  # before any of the source's graph runs: loading runs restore and init ops
        print(f"loading {entry.name} as {handler.description}", flush=True)
        loaded = handler.load(entry, options)
    with _timed("export", timings):
        export_dir.mkdir(parents=True, exist_ok=True)
        print(f"exporting SavedModel to {export_dir}", flush=True)
        handler.export(loaded, export_dir)
        if serve_under(export_dir, set(options.tags)):
            print(f"served graph tagged {tag_set_text(options.tags)}", flush=True)

    signatures = read_signatures(export_dir, options.tags)
    if SERVING_DEFAULT not in signatures:
        raise UserError(f"{export_dir}: the export has no serving_default signature", "report this as a bug")
    with _timed("parity", timings):
        # String inputs are described from the export's graph (images it decodes, words its tables hold)
        # so that generated inputs are what the model accepts.
        batch = _sample_inputs(sample_uri, described_inputs(export_dir, loaded.inputs, tags=options.tags))
        reference = _reference_outputs(loaded, batch, sample_uri)
        compute = loaded.extras.get("compute_dtype", "float32")
        repair = loaded.extras.get("repaired", "")
        # The source model (and every function the export traced over its variables) is not needed past
        # its reference answer: free it, and give its pages back, before the serving session loads the
        # export, so a multi-GB model is never held twice.
        del loaded
        release_freed_memory()
        served = _served_outputs(export_dir, batch, options.tags)
        atol, rtol = tolerance_for(compute, parity_atol, parity_rtol)
        results = compare_outputs(reference, served, atol, rtol)
    for r in results:
        print(f"parity {r.output}: max |diff| = {r.max_abs_diff:.3g}", flush=True)
    if (atol, rtol) != (parity_atol, parity_rtol):
        print(
            f"parity tolerance atol={atol:.2g} rtol={rtol:.2g} for a model computing in {compute}", flush=True
        )
    widened = _widened_outputs(reference, signatures[SERVING_DEFAULT])
    for name, dtype in widened.items():
        print(f"output '{name}': {dtype} served as float32 (TF Serving's REST API cannot encode {dtype})")
    parity = as_metadata(results)
    if repair:
        print(f"repaired: {repair}", flush=True)
    export_metadata.update(
        {
            "source_format": handler.name,
            "repaired": repair,
            "source_uri": model_metadata.get("source_uri", ""),
            "saved_model_tags": list(options.tags),
            "signatures": {name: sig.as_dict() for name, sig in signatures.items()},
            "parity": parity,
            "parity_tolerance": {"atol": atol, "rtol": rtol, "compute_dtype": compute},
            "parity_passed": all(r.within_tolerance for r in results),
            "widened_outputs": widened,
            "timings_seconds": timings,
        }
    )
    require_parity(results, atol, rtol)
    return parity


def _widened_outputs(reference: dict, signature) -> dict[str, str]:
    """Outputs the source computes in half precision and the export serves as float32."""
    served = {spec.name: spec.dtype for spec in signature.outputs}
    return {
        name: np.asarray(value).dtype.name
        for name, value in reference.items()
        if np.asarray(value).dtype.name in HALF_DTYPES and served.get(name) == "float32"
    }


run_export_step = reports_errors(export_model)
