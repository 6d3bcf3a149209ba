"""The check step's parameters, written once (see components/common/options.py)."""

from kfp_tfserving.components.common.options import Option, Options

CHECK_OPTIONS = Options(
    Option(
        "contract_uri",
        str,
        "",
        "Optional expected-signature file (YAML or JSON, path or URI); any difference fails.",
        flag="--contract",
        uri=True,
    ),
    Option(
        "serving_tf_version",
        str,
        "",
        "TensorFlow version of the model server; a model written by a newer one fails (default: the "
        "TensorFlow in the step's image).",
    ),
    Option(
        "batching_params",
        bool,
        True,
        "Sweep batch sizes through the serving oracle, load-test the chosen parameters with TensorFlow's "
        "batch scheduler against the unbatched model, and write batching_params.pbtxt into the version only "
        "when batching pays (read by TF Serving started with --enable_batching "
        "--enable_per_model_batching_parameters); the report shows both, the metrics the figures.",
    ),
    Option(
        "serving_cpus",
        int,
        0,
        "CPUs of the model server, for num_batch_threads (0: as many as the check step has).",
    ),
    Option(
        "tags",
        str,
        "serve",
        "The tag-set TF Serving loads (its `--saved_model_tags`, comma-separated): the meta graph judged, "
        "loaded and run.",
    ),
    Option(
        "sample_uri",
        str,
        "",
        "The `.npz` or TF Serving JSON request the export compared on; the runtime checks run it (then an "
        "existing warmup file) before any generated input, and it becomes the warmup file.",
        flag="--sample",
        uri=True,
    ),
)
