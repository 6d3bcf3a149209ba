"""Load the source model with its format's handler, export a SavedModel, prove numeric parity."""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from kfp_tfserving.components.common.artifacts import ExportedModelMetadata, LoadedModelMetadata
from kfp_tfserving.components.common.errors import UserError, naming_the_source, reports_errors, specific_line
from kfp_tfserving.components.common.formats import ExportOptions, detect_format, handler_named
from kfp_tfserving.components.common.formats.base import TensorSpecInfo
from kfp_tfserving.components.common.formats.graph_vetting import vet_source
from kfp_tfserving.components.common.formats.keras_precision import HALF_DTYPES
from kfp_tfserving.components.common.formats.string_inputs import described_inputs
from kfp_tfserving.components.common.heap import map_large_blocks_apart, release_freed_memory
from kfp_tfserving.components.common.samples import (
    UNKNOWN_DIM,
    generate_inputs,
    length_ladder,
    load_sample,
)
from kfp_tfserving.components.common.saved_model.edit import serve_under
from kfp_tfserving.components.common.saved_model.proto import SERVING_DEFAULT, read_signatures
from kfp_tfserving.components.common.saved_model.repair import drop_duplicate_assets, duplicate_assets_repair
from kfp_tfserving.components.common.saved_model.tags import parse_tags, tag_set_text
from kfp_tfserving.components.common.saved_model.warmup import WARMUP_FILE, write_warmup
from kfp_tfserving.components.common.serving_oracle import load_served, servability_problem
from kfp_tfserving.components.common.storage import storage_for
from kfp_tfserving.components.export_savedmodel.options import EXPORT_OPTIONS
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
    with tempfile.TemporaryDirectory() as tmp:
        local = storage_for(sample_uri).download(sample_uri, Path(tmp) / Path(sample_uri).name)
        return load_sample(local, specs, label=sample_uri)


def _input_fix(sample_uri: str) -> str:
    if sample_uri:
        return f"check that the sample {sample_uri} holds inputs the model accepts (--sample)"
    return "pass --sample with a real request (an .npz or TF Serving JSON) the model accepts"


def _generated_reference(loaded, specs: list[TensorSpecInfo]) -> tuple[dict, dict, int]:
    """(batch, the source model's answer, the length used): unknown dimensions are tried on a ladder of
    lengths, shortest first, until the model accepts one; when none works, the error says which lengths
    were tried and the model's own refusal at the longest (the layer that needs more)."""
    lengths = length_ladder(specs)
    last: Exception | None = None
    for length in lengths:
        batch = generate_inputs(specs, unknown_dim=length)
        try:
            return batch, loaded.reference(batch), length
        except UserError:
            raise
        except Exception as err:
            last = err
            if len(lengths) > 1:
                print(f"generated inputs of length {length} refused: {specific_line(err)}", flush=True)
    if len(lengths) == 1:
        raise UserError(
            f"the source model fails on generated inputs: {specific_line(last)}", _input_fix("")
        ) from None
    raise UserError(
        "the source model fails on generated inputs at every length tried for their unknown dimensions "
        f"({', '.join(map(str, lengths))}); at {lengths[-1]}{_layers_named(loaded, last)}: {specific_line(last)}",
        "pass --sample with a request of a length the model accepts (an .npz or TF Serving JSON)",
    ) from None


def _refuse_random_outputs(export_dir: Path, tags: tuple[str, ...], results) -> None:
    """A parity failure of an output that draws random numbers on every run is the model's training mode,
    not the export: say which ops and which switch, and how to bind it."""
    from kfp_tfserving.components.common.formats.random_ops import random_outputs_problem
    from kfp_tfserving.components.common.saved_model.proto import meta_graph, read_saved_model_proto

    bad = [r.output for r in results if not r.within_tolerance]
    if not bad:
        return
    meta = meta_graph(read_saved_model_proto(export_dir), export_dir, tags)
    outputs = meta.signature_def[SERVING_DEFAULT].outputs
    for name in bad:
        if name in outputs:
            problem = random_outputs_problem(meta.graph_def, [outputs[name].name], name)
            if problem:
                raise UserError(f"numeric parity failed: {problem[0]}", problem[1])


def _layers_named(loaded, err: Exception) -> str:
    """' layer NAME' for the Keras layer of the class an error names, when the model has one such layer."""
    line = specific_line(err)
    cls = line.split(":")[0]
    names = [
        layer.name for layer in getattr(loaded.model, "layers", None) or [] if type(layer).__name__ == cls
    ]
    return f" layer '{names[0]}'" if len(names) == 1 else ""


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
    parity_atol: float = EXPORT_OPTIONS.default("parity_atol"),
    parity_rtol: float = EXPORT_OPTIONS.default("parity_rtol"),
    tags: str = EXPORT_OPTIONS.default("tags"),
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
    source = LoadedModelMetadata.from_dict(model_metadata)
    if source.format and source.entry:
        handler = handler_named(source.format)
        entry = model_dir / source.entry
    else:  # a Model artifact from outside this project: detect it here
        handler, entry = detect_format(model_dir)
    timings: dict[str, float] = {}
    map_large_blocks_apart()  # the weights' pages go back to the system as soon as a tensor is freed
    # The load step put the source at model_dir/<first part of entry>.
    entry_parts = Path(source.entry).parts
    copy = model_dir / entry_parts[0] if entry_parts else model_dir
    with _timed("load", timings), naming_the_source(copy, source.source_uri):
        vet_source(entry)  # before any of the source's graph runs: loading runs restore and init ops
        print(f"loading {entry.name} as {handler.description}", flush=True)
        loaded = handler.load(entry, options)
    with _timed("export", timings):
        export_dir.mkdir(parents=True, exist_ok=True)
        print(f"exporting SavedModel to {export_dir}", flush=True)
        handler.export(loaded, export_dir)
        dropped = drop_duplicate_assets(export_dir)  # copied SavedModels: TF1 Builders list assets twice
        if serve_under(export_dir, set(options.tags)):
            print(f"served graph tagged {tag_set_text(options.tags)}", flush=True)

    signatures = read_signatures(export_dir, options.tags)
    if SERVING_DEFAULT not in signatures:
        raise UserError(f"{export_dir}: the export has no serving_default signature", "report this as a bug")
    with _timed("parity", timings):
        # String inputs are described from the export's graph (images it decodes, words its tables hold)
        # so that generated inputs are what the model accepts.
        specs = described_inputs(export_dir, loaded.inputs, tags=options.tags)
        if sample_uri:
            batch = _sample_inputs(sample_uri, specs)
            reference = _reference_outputs(loaded, batch, sample_uri)
        else:
            batch, reference, length = _generated_reference(loaded, specs)
            if length != UNKNOWN_DIM and not (export_dir / WARMUP_FILE).exists():
                # The check step and TF Serving's warmup then run a length the model accepts.
                write_warmup(export_dir / WARMUP_FILE, SERVING_DEFAULT, [batch])
                print(f"unknown dimensions generated at length {length}; written as the warmup request")
        compute = loaded.compute_dtype
        repairs = [loaded.repaired, duplicate_assets_repair(dropped) if dropped else ""]
        repair = "; ".join(r for r in repairs if r)
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
    exported = ExportedModelMetadata(
        source_format=handler.name,
        repaired=repair,
        source_uri=source.source_uri,
        saved_model_tags=list(options.tags),
        signatures={name: sig.as_dict() for name, sig in signatures.items()},
        parity=parity,
        parity_tolerance={"atol": atol, "rtol": rtol, "compute_dtype": compute},
        parity_passed=all(r.within_tolerance for r in results),
        widened_outputs=widened,
        timings_seconds=timings,
    )
    export_metadata.update(exported.to_dict())
    _refuse_random_outputs(export_dir, options.tags, results)
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
