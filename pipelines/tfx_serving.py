"""A TFX pipeline publishing a TFX Model artifact through ServingPusher: Importer(Model) → ServingPusher.

The same definition runs under TFX's LocalDagRunner (ML Metadata on SQLite) and compiles with TFX's
KubeflowV2DagRunner into the KFP v2 pipeline spec committed as tfx_serving.json. In a training pipeline,
ServingPusher takes the Trainer's `model` output (and Evaluator's `blessing`) in place of InfraValidator and
Pusher; the Importer here stands in for a Trainer that ran elsewhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kfp_tfserving.components import __version__

TFX_IMAGE_REPOSITORY = "kfp-tfserving-tfx"
TFX_IMAGE = f"{TFX_IMAGE_REPOSITORY}:{__version__}"
PIPELINE_NAME = "kfp-tfserving-tfx-serving"


def create_pipeline(
    model_uri: str,
    base_path: str,
    pipeline_root: str,
    metadata_path: str | None = None,
    pipeline_name: str = PIPELINE_NAME,
    **step_parameters: Any,
):
    """Importer(Model at model_uri) → ServingPusher(base_path). metadata_path: ML Metadata's SQLite file
    for LocalDagRunner (None on Kubeflow, where the cluster's ML Metadata is used)."""
    from tfx.dsl.components.common.importer import Importer
    from tfx.orchestration import metadata, pipeline
    from tfx.types import standard_artifacts

    from kfp_tfserving.components.tfx import ServingPusher

    model = Importer(source_uri=model_uri, artifact_type=standard_artifacts.Model).with_id("import_model")
    pusher = ServingPusher(model=model.outputs["result"], base_path=base_path, **step_parameters)
    return pipeline.Pipeline(
        pipeline_name=pipeline_name,
        pipeline_root=pipeline_root,
        components=[model, pusher],
        metadata_connection_config=(
            metadata.sqlite_metadata_connection_config(metadata_path) if metadata_path else None
        ),
    )


def compiled_spec_path() -> Path:
    return Path(__file__).with_name("tfx_serving.json")


def compile_for_kubeflow(output: Path | None = None, image: str = TFX_IMAGE) -> Path:
    """Compile the pipeline with TFX's KubeflowV2DagRunner into a KFP v2 pipeline job spec (JSON), by
    default the committed tfx_serving.json. The model URI and base path are its runtime parameters; the
    pipeline root is left to the cluster's default."""
    import json
    import tempfile

    from tfx import components
    from tfx.orchestration import data_types
    from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner as v2

    if components.InfraValidator is None:
        # The step builder tests every node with isinstance(node, InfraValidator); without apache-beam that
        # class fails to import and TFX leaves None there. No node of this pipeline is an InfraValidator,
        # so a class nothing is an instance of gives the same answer.
        components.InfraValidator = type("InfraValidatorNotInstalled", (), {})
    model_uri = data_types.RuntimeParameter(name="model_uri", ptype=str)
    base_path = data_types.RuntimeParameter(name="base_path", ptype=str)
    target = Path(output) if output is not None else compiled_spec_path()
    with tempfile.TemporaryDirectory() as scratch:
        runner = v2.KubeflowV2DagRunner(
            config=v2.KubeflowV2DagRunnerConfig(default_image=image),
            output_dir=scratch,
            output_filename="spec.json",
        )
        runner.run(create_pipeline(model_uri, base_path, pipeline_root=""), write_out=True)
        spec = json.loads((Path(scratch) / "spec.json").read_text())
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(spec, indent=2, sort_keys=True) + "\n")  # one line from TFX; reviewable
    return target
