"""Each pipeline's parameters, assembled from the steps' options (components/<step>/options.py).

kfp-free: the command line builds `run`'s options from EXPORT_TO_SERVING without importing kfp, and the
pipelines get their signatures from here through `taking`.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from typing import Any

from kfp_tfserving.components.check_signatures.options import CHECK_OPTIONS
from kfp_tfserving.components.common.options import Option, Options
from kfp_tfserving.components.deploy_kserve.options import DEPLOY_OPTIONS
from kfp_tfserving.components.export_savedmodel.options import EXPORT_OPTIONS
from kfp_tfserving.components.load_model.options import LOAD_OPTIONS
from kfp_tfserving.components.push_to_serving.options import PUSH_OPTIONS
from kfp_tfserving.components.train_keras_example.options import TRAIN_OPTIONS

# What the export → check → push chain takes besides the model and the base path. Options the steps share
# (`tags`, `sample_uri`) are one chain parameter (`+` keeps the first declaration), handed to every step
# that declares it.
CHAIN = EXPORT_OPTIONS + CHECK_OPTIONS + PUSH_OPTIONS.without("base_path", "model_name", "run_id")


def _kserve(name: str, help_text: str) -> Option:
    """A deploy_kserve option as serve_model exposes it: prefixed, and optional (no namespace: no deploy)."""
    return dataclasses.replace(DEPLOY_OPTIONS[name], name=f"kserve_{name}", default="", help=help_text)


KSERVE = Options(
    _kserve("namespace", "Deploy to KServe in this namespace after the push ('' does not deploy)."),
    _kserve("name", DEPLOY_OPTIONS["name"].help),
    _kserve("storage_uri", DEPLOY_OPTIONS["storage_uri"].help),
)

_WHERE = PUSH_OPTIONS.only("base_path", "model_name")

EXPORT_TO_SERVING = (
    LOAD_OPTIONS.only("source_uri")
    + _WHERE
    + LOAD_OPTIONS.only("model_format", "weights_uri", "read_deadline", "stall_timeout")
    + CHAIN
)
SERVE_MODEL = _WHERE + CHAIN + KSERVE
RETRAIN_AND_EXPORT = (
    _WHERE
    + TRAIN_OPTIONS.only("data_uri", "label_column", "epochs", "learning_rate", "seed", "generated_rows")
    + PUSH_OPTIONS.only("force")
    + KSERVE
)


def signature_of(
    options: Options, leading: tuple[inspect.Parameter, ...] = (), returns: Any = inspect.Signature.empty
) -> inspect.Signature:
    """A Python signature with `leading` (artifact inputs) first, then the options, required ones first."""
    ordered = sorted(options.values(), key=lambda o: not o.required)
    return inspect.Signature(
        [
            *leading,
            *(
                inspect.Parameter(
                    o.name,
                    inspect.Parameter.POSITIONAL_OR_KEYWORD,
                    annotation=o.annotation,
                    default=inspect.Parameter.empty if o.required else o.default,
                )
                for o in ordered
            ),
        ],
        return_annotation=returns,
    )


def taking(
    options: Options, *, leading: tuple[inspect.Parameter, ...] = (), returns: Any = inspect.Signature.empty
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a pipeline body the signature of `options` (KFP reads a pipeline's parameters from it); the body
    receives every parameter as a keyword argument."""

    signature = signature_of(options, leading, returns)

    def decorate(body: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(body)
        def pipeline_func(*args: Any, **kwargs: Any) -> Any:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            return body(**bound.arguments)

        pipeline_func.__signature__ = signature  # type: ignore[attr-defined]
        return pipeline_func

    return decorate
