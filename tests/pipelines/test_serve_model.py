"""serve_model as a team would reuse it: after their own training step, from Python or from its YAML."""

import pytest
import yaml
from conftest import published_versions
from kfp import compiler, components, dsl, local
from kfp.dsl import Model, Output

from kfp_tfserving.components.common.image import RUNTIME_IMAGE
from kfp_tfserving.components.common.saved_model.proto import read_signatures
from kfp_tfserving.pipelines.cli.compile import pipeline_yaml

pytestmark = pytest.mark.slow


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def teams_own_training(model: Output[Model]):
    """A step from outside this project: it writes a .keras file and no format metadata."""
    import os

    import keras

    rooms = keras.Input((3,), name="rooms")
    os.makedirs(model.path, exist_ok=True)
    keras.Model(rooms, keras.layers.Dense(1, name="price")(rooms)).save(
        os.path.join(model.path, "house.keras")
    )


def _served_names(version_dir):
    signature = read_signatures(version_dir)["serving_default"]
    return {i.name for i in signature.inputs}, {o.name for o in signature.outputs}


def test_the_compiled_sub_pipeline_runs_after_a_teams_own_step(tmp_path, tf):
    serve = components.load_component_from_file(str(pipeline_yaml("serve_model")))

    @dsl.pipeline(name="teams-pipeline")
    def teams_pipeline(base_path: str) -> Model:
        trained = teams_own_training()
        return serve(model=trained.outputs["model"], base_path=base_path).output

    # Compiles into one pipeline that still never caches the push.
    compiled = tmp_path / "teams.yaml"
    compiler.Compiler().compile(teams_pipeline, str(compiled))
    doc = yaml.safe_load(compiled.read_text())
    sub_dag = doc["components"]["comp-serve-model"]["dag"]["tasks"]
    # The KServe step sits in a condition on kserve_namespace, off by default.
    assert set(sub_dag) == {"export-savedmodel", "check-signatures", "push-to-serving", "condition-1"}
    assert sub_dag["push-to-serving"]["cachingOptions"] == {}

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    base = tmp_path / "serving" / "house"
    task = teams_pipeline(base_path=str(base))
    assert published_versions(base) == [1]
    assert task.output.metadata["pushed_destination"] == str(base / "1")
    assert _served_names(base / "1") == ({"rooms"}, {"price"})


def test_retrain_and_export_yaml_trains_then_publishes_each_run(tmp_path, tf):
    pipeline = components.load_component_from_file(str(pipeline_yaml("retrain_and_export")))
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    base = tmp_path / "serving" / "tiny"
    first = pipeline(base_path=str(base), epochs=3, generated_rows=64, seed=1)
    assert published_versions(base) == [1]
    assert first.output.metadata["model_name"] == "tiny"
    assert _served_names(base / "1") == ({"features"}, {"prediction"})
    # The next scheduled run, on other data: a new version, not a cache hit.
    pipeline(base_path=str(base), epochs=3, generated_rows=64, seed=2)
    assert published_versions(base) == [1, 2]
