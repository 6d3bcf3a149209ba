"""Train a small Keras regressor on a CSV table (from a path or URI) or on generated data.

An example of the training step a team puts before the serve_model sub-pipeline; no kfp import here.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from kfp_tfserving.components.common.artifacts import LoadedModelMetadata
from kfp_tfserving.components.common.errors import FormatError, UserError, reports_errors
from kfp_tfserving.components.common.storage import storage_for
from kfp_tfserving.components.train_keras_example.options import TRAIN_OPTIONS

MODEL_FILE = "model.keras"
# The generated data set: y = x · weights + bias + noise, so a trained model can be judged against it.
GENERATED_WEIGHTS = (1.5, -2.0, 0.5, 3.0)
GENERATED_BIAS = 0.7


def generate_table(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    if rows < 10:
        raise UserError(f"generated_rows={rows}: too few to train and validate on", "use at least 10 rows")
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(rows, len(GENERATED_WEIGHTS))).astype(np.float32)
    noise = rng.normal(scale=0.05, size=rows).astype(np.float32)
    labels = features @ np.asarray(GENERATED_WEIGHTS, np.float32) + GENERATED_BIAS + noise
    return features, labels, [f"x{i}" for i in range(features.shape[1])]


def parse_table(text: str, label_column: str, name: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Numeric CSV with a header row; `label_column` is the target, every other column a feature."""
    rows = [row for row in csv.reader(io.StringIO(text)) if row and any(cell.strip() for cell in row)]
    if len(rows) < 2:
        raise FormatError(
            f"{name}: no data rows under the header", "give a CSV with a header and numeric rows"
        )
    header = [cell.strip() for cell in rows[0]]
    if label_column not in header:
        raise FormatError(
            f"{name}: no column '{label_column}' in the header ({', '.join(header)})",
            "name the target column with label_column",
        )
    if len(header) < 2:
        raise FormatError(f"{name}: only the label column, no features", "add at least one feature column")
    values = np.empty((len(rows) - 1, len(header)), np.float32)
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise FormatError(
                f"{name}: line {line} has {len(row)} cells, the header {len(header)}", "fix that row"
            )
        try:
            values[line - 2] = [float(cell) for cell in row]
        except ValueError:
            raise FormatError(
                f"{name}: line {line} has a non-numeric cell", "every cell must be a number"
            ) from None
    if not np.isfinite(values).all():
        raise FormatError(f"{name}: NaN or infinite values", "clean the data before training")
    label_at = header.index(label_column)
    features = np.delete(values, label_at, axis=1)
    return features, values[:, label_at], [h for i, h in enumerate(header) if i != label_at]


def read_table(data_uri: str, label_column: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    try:
        text = storage_for(data_uri).read_bytes(data_uri).decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError(f"{data_uri}: not UTF-8 text", "give a CSV file") from None
    return parse_table(text, label_column, data_uri)


def fit(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    validation_fraction: float,
) -> tuple[Any, dict[str, float]]:
    """A normalised two-layer regressor; returns the model and its final training/validation figures."""
    from kfp_tfserving.components.common.tfenv import import_tensorflow

    import_tensorflow()
    import keras

    keras.utils.set_random_seed(seed)
    order = np.random.default_rng(seed).permutation(len(labels))
    n_val = max(1, int(len(labels) * validation_fraction))
    val, train = order[:n_val], order[n_val:]
    inputs = keras.Input((features.shape[1],), name="features")
    norm = keras.layers.Normalization(name="normalise")
    norm.adapt(features[train])
    hidden = keras.layers.Dense(16, activation="relu")(norm(inputs))
    model = keras.Model(inputs, keras.layers.Dense(1, name="prediction")(hidden))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mse", metrics=["mae"])
    history = model.fit(
        features[train],
        labels[train],
        validation_data=(features[val], labels[val]),
        epochs=epochs,
        batch_size=batch_size,
        verbose=0,
    )
    baseline = float(np.mean(np.abs(labels[val] - labels[train].mean())))
    figures = {
        "train_loss": float(history.history["loss"][-1]),
        "val_mae": float(history.history["val_mae"][-1]),
        "val_mae_predicting_mean": baseline,
        "train_rows": int(len(train)),
        "val_rows": int(n_val),
    }
    return model, figures


def train_example(
    artifact_dir: Path,
    metadata: dict[str, Any],
    *,
    data_uri: str = TRAIN_OPTIONS.default("data_uri"),
    label_column: str = TRAIN_OPTIONS.default("label_column"),
    epochs: int = TRAIN_OPTIONS.default("epochs"),
    batch_size: int = TRAIN_OPTIONS.default("batch_size"),
    learning_rate: float = TRAIN_OPTIONS.default("learning_rate"),
    seed: int = TRAIN_OPTIONS.default("seed"),
    generated_rows: int = TRAIN_OPTIONS.default("generated_rows"),
    validation_fraction: float = TRAIN_OPTIONS.default("validation_fraction"),
) -> dict[str, float]:
    """Fill the training step's Model artifact (a `.keras` file); returns the figures to log as metrics."""
    if epochs < 1 or batch_size < 1:
        raise UserError(f"epochs={epochs}, batch_size={batch_size}: both must be at least 1", "raise them")
    if not 0 < validation_fraction < 1:
        raise UserError(f"validation_fraction={validation_fraction}: outside (0, 1)", "use e.g. 0.2")
    if data_uri:
        features, labels, names = read_table(data_uri, label_column)
    else:
        features, labels, names = generate_table(generated_rows, seed)
    if len(labels) < 2:
        raise FormatError(f"{data_uri}: {len(labels)} row(s)", "give enough rows to train and validate on")
    model, figures = fit(
        features,
        labels,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        seed=seed,
        validation_fraction=validation_fraction,
    )
    artifact_dir.mkdir(parents=True, exist_ok=True)
    model.save(artifact_dir / MODEL_FILE)
    # The same keys the load step writes, so the export step needs no format detection.
    trained = LoadedModelMetadata(
        format="keras",
        entry=MODEL_FILE,
        source_uri=data_uri or f"generated:rows={generated_rows},seed={seed}",
        extra={"feature_names": names, **figures},
    )
    metadata.update(trained.to_dict())
    print(f"trained on {figures['train_rows']} rows: validation MAE {figures['val_mae']:.4f}", flush=True)
    return figures


run_train_step = reports_errors(train_example)
