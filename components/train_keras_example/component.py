"""KFP wrapper of the example training step."""

from kfp import dsl
from kfp.dsl import Metrics, Model, Output

from kfp_tfserving.components.common.image import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def train_keras_example(
    model: Output[Model],
    metrics: Output[Metrics],
    data_uri: str = "",
    label_column: str = "label",
    epochs: int = 30,
    batch_size: int = 32,
    learning_rate: float = 0.01,
    seed: int = 0,
    generated_rows: int = 512,
    validation_fraction: float = 0.2,
):
    """Train a small Keras regressor on a numeric CSV table, or on generated data when no table is given.

    Args:
        model: The trained model as a Keras 3 `.keras` file; metadata `format`, `entry` (as the load step
            writes them), `feature_names` and the training figures.
        metrics: `train_loss`, `val_mae`, `val_mae_predicting_mean` (the baseline), row counts.
        data_uri: CSV with a header row (path, mounted PVC path, gs://, s3:// or http(s)://); empty: generate
            `generated_rows` rows of a noisy linear relation.
        label_column: The target column; every other column is a feature.
        epochs: Training epochs.
        batch_size: Rows per gradient step.
        learning_rate: Adam's learning rate.
        seed: Seeds the split, the initial weights and generated data.
        generated_rows: Rows to generate when `data_uri` is empty.
        validation_fraction: Share of rows held out for the validation figures.
    """
    from pathlib import Path

    from kfp_tfserving.components.train_keras_example.trainer import run_train_step

    figures = run_train_step(
        Path(model.path),
        model.metadata,
        data_uri=data_uri,
        label_column=label_column,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        seed=seed,
        generated_rows=generated_rows,
        validation_fraction=validation_fraction,
    )
    for key, value in figures.items():
        metrics.log_metric(key, value)
