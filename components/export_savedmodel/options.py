"""The export step's parameters, written once (see components/common/options.py)."""

from kfp_tfserving.components.common.options import Option, Options

EXPORT_OPTIONS = Options(
    Option(
        "signature",
        str,
        "",
        "The source signature to serve as `serving_default` when the source has none.",
    ),
    Option(
        "inputs",
        list,
        [],
        "TF1 graphs: input tensor names (default: the graph's placeholders).",
        metavar="NAME[,NAME...]",
    ),
    Option(
        "outputs",
        list,
        [],
        "TF1 graphs: output tensor names (default: the graph's sinks).",
        metavar="NAME[,NAME...]",
    ),
    Option(
        "feeds",
        list,
        [],
        "TF1 graphs: `NAME=VALUE` items that bind a placeholder to a constant.",
        flag="--feed",
        metavar="NAME=VALUE",
        repeat=True,
    ),
    Option(
        "allow_unsafe_deserialization",
        bool,
        False,
        "Load models that carry Python code (Keras Lambda layers).",
    ),
    Option(
        "sample_uri",
        str,
        "",
        "An `.npz` or TF Serving JSON request to compare on (default: generated inputs).",
        flag="--sample",
        uri=True,
    ),
    Option("parity_atol", float, 1e-4, "Absolute tolerance of the parity check."),
    Option(
        "parity_rtol",
        float,
        1e-4,
        "Relative tolerance of the parity check (both are widened for mixed-precision Keras models: "
        "4 x epsilon of the compute dtype, float16 3.9e-3, bfloat16 3.1e-2).",
    ),
    Option(
        "tags",
        str,
        "serve",
        "The tag-set TF Serving loads, comma-separated (`serve,gpu`): a SavedModel source's meta graph "
        "with exactly these tags is exported (its other meta graphs kept), and every export serves its "
        "graph under them.",
    ),
    Option(
        "custom_objects",
        list,
        [],
        "Keras `MODULE[:NAME,...]` items: each module is imported before loading so its registered "
        "Python-defined layers deserialize (safe mode stays on). The module must be importable in this "
        "step's image.",
        metavar="MODULE[:NAME,...]",
        repeat=True,
    ),
)
