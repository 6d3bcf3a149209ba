"""The example training step's parameters, written once (see components/common/options.py)."""

from kfp_tfserving.components.common.options import Option, Options

TRAIN_OPTIONS = Options(
    Option(
        "data_uri",
        str,
        "",
        "CSV with a header row (path, mounted PVC path, gs://, s3:// or http(s)://); empty: generate "
        "`generated_rows` rows of a noisy linear relation.",
        uri=True,
    ),
    Option("label_column", str, "label", "The target column; every other column is a feature."),
    Option("epochs", int, 30, "Training epochs."),
    Option("batch_size", int, 32, "Rows per gradient step."),
    Option("learning_rate", float, 0.01, "Adam's learning rate."),
    Option("seed", int, 0, "Seeds the split, the initial weights and generated data."),
    Option("generated_rows", int, 512, "Rows to generate when `data_uri` is empty."),
    Option("validation_fraction", float, 0.2, "Share of rows held out for the validation figures."),
)
