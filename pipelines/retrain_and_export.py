"""Retrain a small Keras model and publish it through serve_model: the shape of a recurring run."""

from kfp import dsl
from kfp.dsl import Model

from kfp_tfserving.components.train_keras_example.component import train_keras_example
from kfp_tfserving.pipelines.chain import sized
from kfp_tfserving.pipelines.serve_model import serve_model


@dsl.pipeline(
    name="retrain-and-export",
    description="Train a small Keras regressor on a CSV table (or generated data) and publish it as the "
    "next TF Serving version; meant for a recurring run.",
)
def retrain_and_export(
    base_path: str,
    data_uri: str = "",
    label_column: str = "label",
    model_name: str = "",
    epochs: int = 30,
    learning_rate: float = 0.01,
    seed: int = 0,
    generated_rows: int = 512,
    force: bool = False,
    kserve_namespace: str = "",
    kserve_name: str = "",
    kserve_storage_uri: str = "",
) -> Model:
    trained = train_keras_example(
        data_uri=data_uri,
        label_column=label_column,
        epochs=epochs,
        learning_rate=learning_rate,
        seed=seed,
        generated_rows=generated_rows,
    )
    # The table behind data_uri changes between scheduled runs while the URI stays the same: a cache hit
    # would serve yesterday's model.
    trained.set_caching_options(False)
    sized(trained, "train_keras_example")
    served = serve_model(
        model=trained.outputs["model"],
        base_path=base_path,
        model_name=model_name,
        force=force,
        kserve_namespace=kserve_namespace,
        kserve_name=kserve_name,
        kserve_storage_uri=kserve_storage_uri,
    )
    return served.output
