"""Numeric parity: the exported serving signature must compute what the source model computes."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from kfp_tfserving.components.common.errors import ModelRejected, UserError
from kfp_tfserving.components.common.formats.base import Tensors

# Machine epsilon of the half-precision compute dtypes (float16: 10 stored mantissa bits; bfloat16: 7).
_EPSILON = {"float16": 2.0**-10, "bfloat16": 2.0**-7}
# A mixed-precision model computed twice (eagerly, then as the served graph) may round differently in any
# layer; four units in the last place at 1.0 bound what we have seen without hiding a wrong export.
ULPS = 4


def tolerance_for(compute_dtype: str, atol: float, rtol: float) -> tuple[float, float]:
    """The parity tolerance for a model computing in `compute_dtype`: the given one, widened to
    ULPS x epsilon (float16: 3.9e-3, bfloat16: 3.1e-2) for half-precision compute dtypes."""
    floor = ULPS * _EPSILON.get(compute_dtype, 0.0)
    return max(atol, floor), max(rtol, floor)


def _is_float(dtype: np.dtype) -> bool:
    # ml_dtypes' bfloat16 has numpy kind 'V'; it is a float all the same.
    return dtype.kind in "fc" or dtype.name in ("bfloat16", "float16")


@dataclass
class OutputParity:
    output: str
    max_abs_diff: float
    max_allowed_excess: float  # > 0 means the output is out of tolerance by that much
    within_tolerance: bool


def compare_outputs(source: Tensors, exported: Tensors, atol: float, rtol: float) -> list[OutputParity]:
    """Per output: max |exported - source| and whether |diff| <= atol + rtol*|source| holds everywhere."""
    missing = sorted(set(source) - set(exported))
    if missing:
        raise UserError(
            f"the exported signature lacks output(s) {missing} that the source model produces "
            f"(it has {sorted(exported)})",
            "report this as a bug in the export of this format",
        )
    results = []
    for name in sorted(source):
        want, got = np.asarray(source[name]), np.asarray(exported[name])
        if want.shape != got.shape:
            raise UserError(
                f"output '{name}': exported shape {got.shape} differs from the source's {want.shape}"
            )
        if _is_float(want.dtype) or _is_float(got.dtype):
            diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
            allowed = atol + rtol * np.abs(want.astype(np.float64))
            excess = float(np.max(diff - allowed)) if diff.size else 0.0
            max_diff = float(np.max(diff)) if diff.size else 0.0
            ok = bool(np.all(diff <= allowed)) and not np.isnan(diff).any()
        else:
            ok = bool(np.array_equal(want, got))
            max_diff, excess = (0.0, 0.0) if ok else (float("inf"), float("inf"))
        results.append(OutputParity(name, max_diff, max(excess, 0.0), ok))
    return results


def require_parity(results: list[OutputParity], atol: float, rtol: float) -> None:
    bad = [r for r in results if not r.within_tolerance]
    if bad:
        worst = max(bad, key=lambda r: r.max_abs_diff)
        raise ModelRejected(
            f"numeric parity failed: output '{worst.output}' differs from the source model by up to "
            f"{worst.max_abs_diff:.3g} (tolerance {atol:g} + {rtol:g}*|value|)",
            "check the export of this format, or raise --parity-atol/--parity-rtol if the difference is expected",
        )


def as_metadata(results: list[OutputParity]) -> dict[str, dict]:
    return {r.output: {k: v for k, v in asdict(r).items() if k != "output"} for r in results}
