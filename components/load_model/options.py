"""The load step's parameters, written once (see components/common/options.py)."""

from kfp_tfserving.components.common.options import REQUIRED, Option, Options

LOAD_OPTIONS = Options(
    Option(
        "source_uri",
        str,
        REQUIRED,
        "The model file or directory: a local or mounted-PVC path, `gs://`, `s3://` or `http(s)://`; "
        "`.tar.gz`, `.tgz`, `.tar` and `.zip` archives are unpacked safely.",
        uri=True,
    ),
    Option(
        "model_format",
        str,
        "auto",
        "`auto` to detect, or a format name to insist on (see the component README).",
        flag="--format",
    ),
    Option(
        "max_extract_bytes",
        int,
        0,
        "Refuse archives expanding past this many bytes (0: the default limit, 20 GiB).",
    ),
    Option(
        "read_deadline",
        float,
        300.0,
        "Seconds a remote read may go without an answer (connecting, retrying, stalled) before the step "
        'fails with "timed out after N s"; receiving data restarts it.',
        positive=True,
    ),
    Option(
        "stall_timeout",
        float,
        60.0,
        "Seconds a remote read may receive nothing before the step fails (the read timeout; a stalled read "
        "is not retried); a download that keeps moving is never cut.",
        positive=True,
    ),
    Option(
        "weights_uri",
        str,
        "",
        "The weights file (HDF5, any name) of a Keras architecture file given as `source_uri` "
        "(`model.to_json()`/`to_yaml()`, Keras 3 `config.json`); both are fetched side by side and loaded "
        "as format `keras_architecture_weights`.",
        flag="--weights",
        uri=True,
    ),
)
