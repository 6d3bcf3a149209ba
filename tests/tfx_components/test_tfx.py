"""The TFX components against real TFX 1.21 (installed by `make tfx`): LocalDagRunner pipelines, TFX's own
Pusher side by side, the Trainer's on-disk layouts, a failed check, the KubeflowV2DagRunner spec."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from check_builders import write_contract
from conftest import published_versions, served_predict

from kfp_tfserving.components.common.tfenv import import_tensorflow

PUSHER_KEYS = {"pushed", "pushed_destination", "pushed_version"}


def _save_doubler(export_dir: Path) -> None:
    """A TF2 SavedModel y = 2x, written where a Trainer's run_fn writes it (fn_args.serving_model_dir)."""
    tf = import_tensorflow()
    module = tf.Module()
    module.w = tf.Variable(2.0)

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
    def serve(x):
        return {"y": x * module.w}

    export_dir.parent.mkdir(parents=True, exist_ok=True)
    tf.saved_model.save(module, str(export_dir), signatures={"serving_default": serve})


@pytest.fixture(scope="module")
def trainer_model(tmp_path_factory) -> Path:
    """A Model artifact in the layout TFX 1.x's Trainer writes: the path comes from TFX's own path utils."""
    from tfx.utils import path_utils

    uri = tmp_path_factory.mktemp("trainer") / "Trainer" / "model" / "7"
    _save_doubler(Path(path_utils.serving_model_dir(str(uri))))
    assert (uri / "Format-Serving" / "saved_model.pb").is_file()
    return uri


def _run(tmp_path: Path, components: list, name: str = "p") -> Path:
    """Run the components under TFX's LocalDagRunner with ML Metadata on SQLite; returns the MLMD file."""
    from tfx.orchestration import metadata, pipeline
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner

    mlmd = tmp_path / f"{name}.sqlite"
    LocalDagRunner().run(
        pipeline.Pipeline(
            pipeline_name=name,
            pipeline_root=str(tmp_path / f"{name}-root"),
            components=components,
            metadata_connection_config=metadata.sqlite_metadata_connection_config(str(mlmd)),
        )
    )
    return mlmd


def _artifacts(mlmd: Path, type_name: str) -> list:
    from ml_metadata.metadata_store import metadata_store
    from tfx.orchestration import metadata

    store = metadata_store.MetadataStore(metadata.sqlite_metadata_connection_config(str(mlmd)))
    return sorted(store.get_artifacts_by_type(type_name), key=lambda a: a.id)


def _props(artifact) -> dict:
    out = {}
    for key, value in artifact.custom_properties.items():
        kind = value.WhichOneof("value")
        out[key] = getattr(value, kind)
    return out


def _import_model(uri: Path, name: str = "import_model", **custom_properties):
    from tfx.dsl.components.common.importer import Importer
    from tfx.types import standard_artifacts

    return Importer(
        source_uri=str(uri),
        artifact_type=standard_artifacts.Model,
        custom_properties=custom_properties or None,
    ).with_id(name)


def _filesystem(base: Path):
    from tfx.proto import pusher_pb2

    return pusher_pb2.PushDestination(
        filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=str(base))
    )


@pytest.mark.slow
def test_local_dag_runner_publishes_a_trainer_model_that_serves(trainer_model, tmp_path):
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner

    from kfp_tfserving.pipelines.tfx_serving import create_pipeline

    base = tmp_path / "serving" / "doubler"
    mlmd = tmp_path / "mlmd.sqlite"
    LocalDagRunner().run(create_pipeline(str(trainer_model), str(base), str(tmp_path / "root"), str(mlmd)))

    assert published_versions(base) == [1]
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_allclose(served_predict(base / "1", x=x)["y"], 2 * x)
    (pushed,) = _artifacts(mlmd, "PushedModel")
    props = _props(pushed)
    assert {k: props[k] for k in PUSHER_KEYS} == {
        "pushed": 1,
        "pushed_destination": str(base / "1"),
        "pushed_version": "1",
    }
    assert (Path(pushed.uri) / "saved_model.pb").is_file()  # archived in the artifact, as Pusher does
    (report,) = _artifacts(mlmd, "InfraBlessing")
    figures = _props(report)
    # InfraValidator's output, as InfraValidator grants it: `blessed` 1 and the INFRA_BLESSED file.
    assert figures["blessed"] == 1 and (Path(report.uri) / "INFRA_BLESSED").is_file()
    assert figures["check_passed"] == 1 and figures["errors"] == 0
    assert figures["push_outcome"] == "published version 1"
    # The batching decision measured through the oracle: written (the file's text as a property, the file in
    # the blessing and in the version) or not (why, and no file anywhere); which one depends on the CPUs.
    written = (base / "1" / "batching_params.pbtxt").is_file()
    assert figures["batching_verdict"].startswith(
        "`batching_params.pbtxt` written" if written else "No batching"
    )
    if written:
        assert "max_batch_size" in figures["batching_params"]
        assert (Path(report.uri) / "batching_params.pbtxt").read_text() == figures["batching_params"]
        assert (base / "1" / "batching_params.pbtxt").read_text() == figures["batching_params"]
    else:
        assert figures["batching_params"] == "" and not (Path(report.uri) / "batching_params.pbtxt").exists()
    assert "serving_default" in (Path(report.uri) / "check_report.md").read_text()
    assert json.loads((Path(report.uri) / "check_report.json").read_text())["passed"] is True


@pytest.mark.slow
def test_side_by_side_with_tfx_pusher_same_layout_and_same_property_semantics(
    trainer_model, tmp_path, monkeypatch
):
    """Both under one timestamp: each writes <base>/<timestamp>/ with saved_model.pb and reports pushed=1 with
    the same keys; pushed a second time (the version already in place) both still report pushed=1."""
    from tfx.components.pusher import executor as pusher_executor
    from tfx.components.pusher.component import Pusher

    from kfp_tfserving.components.push_to_serving import versions
    from kfp_tfserving.components.tfx import ServingPusher

    now = 1_790_000_000
    clock = SimpleNamespace(time=lambda: float(now))  # both modules read only time.time()
    monkeypatch.setattr(pusher_executor, "time", clock)
    monkeypatch.setattr(versions, "time", clock)
    theirs, ours = tmp_path / "tfx" / "m", tmp_path / "ours" / "m"

    def components(run: int) -> list:
        model = _import_model(trainer_model)
        return [
            model,
            Pusher(model=model.outputs["result"], push_destination=_filesystem(theirs)),
            ServingPusher(
                model=model.outputs["result"], push_destination=_filesystem(ours), batching_params=False
            ),
        ]

    mlmd = _run(tmp_path, components(1))
    _run(tmp_path, components(2))  # the same model again, with the version already in place
    assert published_versions(theirs) == published_versions(ours) == [now]
    for base in (theirs, ours):
        assert (base / str(now) / "saved_model.pb").is_file()
    theirs_props, ours_props = ([], [])
    for artifact in _artifacts(mlmd, "PushedModel"):
        props = _props(artifact)
        (theirs_props if props["pushed_destination"].startswith(str(theirs)) else ours_props).append(props)
    assert len(theirs_props) == len(ours_props) == 2
    for a, b in zip(theirs_props, ours_props, strict=True):
        assert set(a) == set(b)  # exactly the custom properties Pusher sets, no more
        assert set(b) >= PUSHER_KEYS
        assert a["pushed"] == b["pushed"] == 1
        assert a["pushed_version"] == b["pushed_version"] == str(now)
        for props in (a, b):
            assert props["pushed_destination"] == os.path.join(
                props["pushed_destination"].rsplit("/", 1)[0], props["pushed_version"]
            )
    outcomes = [_props(r)["push_outcome"] for r in _artifacts(mlmd, "InfraBlessing")]
    assert outcomes == [f"published version {now}", f"unchanged: version {now} kept"]


def test_an_unblessed_model_is_not_pushed_by_either(trainer_model, tmp_path):
    from tfx.components.pusher.component import Pusher
    from tfx.dsl.components.common.importer import Importer
    from tfx.types import standard_artifacts

    from kfp_tfserving.components.tfx import ServingPusher

    model = _import_model(trainer_model)
    blessing = Importer(
        source_uri=str(tmp_path / "blessing"),
        artifact_type=standard_artifacts.ModelBlessing,
        custom_properties={"blessed": 0},
    ).with_id("blessing")
    theirs, ours = tmp_path / "tfx" / "m", tmp_path / "ours" / "m"
    mlmd = _run(
        tmp_path,
        [
            model,
            blessing,
            Pusher(
                model=model.outputs["result"],
                model_blessing=blessing.outputs["result"],
                push_destination=_filesystem(theirs),
            ),
            ServingPusher(
                model=model.outputs["result"], model_blessing=blessing.outputs["result"], base_path=str(ours)
            ),
        ],
    )
    assert published_versions(theirs) == published_versions(ours) == []
    props = [_props(a) for a in _artifacts(mlmd, "PushedModel")]
    assert len(props) == 2 and props[0] == props[1]  # TFX's own bookkeeping (tfx_version, ...) included
    assert props[0]["pushed"] == 0 and not PUSHER_KEYS - {"pushed"} & set(props[0])


@pytest.mark.slow
def test_a_failed_check_ends_the_tfx_run_with_the_findings_line(trainer_model, tmp_path):
    from kfp_tfserving.components.tfx import ServingPusher

    contract = write_contract(
        tmp_path / "contract.yaml",
        inputs={"x": {"dtype": "float32", "shape": [-1, 3]}},
        outputs={"scores": {"dtype": "float32", "shape": [-1, 3]}},
    )
    base = tmp_path / "serving" / "m"
    model = _import_model(trainer_model)
    pusher = ServingPusher(
        model=model.outputs["result"],
        base_path=str(base),
        contract_uri=str(contract),
        batching_params=False,
    )
    with pytest.raises(Exception) as failed:
        _run(tmp_path, [model, pusher])
    line = str(failed.value)
    assert line.startswith("TF Serving would reject the model: ")
    assert "'scores' is in the contract but not served" in line and "\n" not in line
    assert published_versions(base) == [] and not base.exists()


@pytest.mark.slow
def test_the_older_trainer_layout_is_published(tmp_path):
    """TFX before 0.21 wrote serving_model_dir/export/<name>/<timestamp>/ (Estimator exports); TFX's path
    utils resolve it for Pusher and for ServingPusher alike."""
    from kfp_tfserving.components.tfx import ServingPusher

    uri = tmp_path / "old" / "model"
    _save_doubler(uri / "serving_model_dir" / "export" / "chicago-taxi" / "1582798459")
    model = _import_model(uri, tfx_version="0.15.0")
    base = tmp_path / "serving" / "m"
    mlmd = _run(tmp_path, [model, ServingPusher(model=model.outputs["result"], base_path=str(base))])
    assert published_versions(base) == [1]
    x = np.ones((1, 3), np.float32)
    np.testing.assert_allclose(served_predict(base / "1", x=x)["y"], 2 * x)
    assert _props(_artifacts(mlmd, "PushedModel")[0])["pushed"] == 1


def test_parameters_are_the_steps_own_options(trainer_model):
    """One options source: every option of the export, check and push steps is a ServingPusher parameter
    with the option's default; unknown ones are refused when the pipeline is built."""
    from kfp_tfserving.components.check_signatures.options import CHECK_OPTIONS
    from kfp_tfserving.components.export_savedmodel.options import EXPORT_OPTIONS
    from kfp_tfserving.components.push_to_serving.options import PUSH_OPTIONS
    from kfp_tfserving.components.tfx import ServingPusher
    from kfp_tfserving.components.tfx.component import ServingPusherSpec
    from kfp_tfserving.components.tfx.parameters import resolve

    defaults = resolve({})
    for step, options in [
        ("export_savedmodel", EXPORT_OPTIONS),
        ("check_signatures", CHECK_OPTIONS),
        ("push_to_serving", PUSH_OPTIONS),
    ]:
        for name, option in options.items():
            assert name in ServingPusherSpec.PARAMETERS
            if not option.required:
                assert defaults[step][name] == option.default, name
    given = resolve({"force": 1, "custom_objects": '["a.b"]', "tags": "serve,gpu"})
    assert given["push_to_serving"]["force"] is True
    assert given["export_savedmodel"]["custom_objects"] == ["a.b"]
    assert (
        given["check_signatures"]["tags"] == given["export_savedmodel"]["tags"] == "serve,gpu"
    )  # one tag-set
    assert given["push_to_serving"]["tags"] == "serve,gpu"
    model = _import_model(trainer_model)
    with pytest.raises(TypeError, match="unknown parameter.*version_polcy"):
        ServingPusher(model=model.outputs["result"], base_path="/m", version_polcy="next")
    with pytest.raises(ValueError, match="exactly one of base_path and push_destination"):
        ServingPusher(model=model.outputs["result"])


def test_the_committed_kubeflow_v2_spec_matches_a_fresh_compile(tmp_path):
    from kfp_tfserving.pipelines.tfx_serving import TFX_IMAGE, compile_for_kubeflow, compiled_spec_path

    fresh = compile_for_kubeflow(tmp_path / "tfx_serving.json")
    committed = compiled_spec_path()
    assert committed.read_text() == fresh.read_text(), "run `kfp-tfserving compile` and commit the JSON"
    spec = json.loads(committed.read_text())["pipelineSpec"]
    executors = spec["deploymentSpec"]["executors"]
    container = executors["ServingPusher_executor"]["container"]
    assert container["image"] == TFX_IMAGE
    assert "kfp_tfserving.components.tfx.executor.Executor" in container["args"]
    assert set(spec["root"]["inputDefinitions"]["parameters"]) == {"model_uri", "base_path"}
    assert "importer" in executors["import_model_executor"]


@pytest.mark.slow
def test_the_compiled_step_runs_as_tfx_kfp_v2_container_runs_it(trainer_model, tmp_path):
    """What the KFP v2 container does with the committed spec, through TFX's own entrypoint helpers: the
    ExecutorInput's artifacts typed by the spec's schema titles, the executor class from the container's
    arguments, the ExecutorOutput back. (The entrypoint module itself imports the Evaluator and so Apache
    Beam, which only the TFX image carries.)"""
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_entrypoint_utils as entry
    from tfx.types import artifact_utils
    from tfx.utils import import_utils

    from kfp_tfserving.pipelines.tfx_serving import compiled_spec_path

    spec = json.loads(compiled_spec_path().read_text())["pipelineSpec"]
    component = spec["components"]["ServingPusher"]
    args = spec["deploymentSpec"]["executors"][component["executorLabel"]]["container"]["args"]
    schema = {
        **{k: v["artifactType"] for k, v in component["inputDefinitions"]["artifacts"].items()},
        **{k: v["artifactType"] for k, v in component["outputDefinitions"]["artifacts"].items()},
    }
    base = tmp_path / "serving" / "m"

    def artifact(key: str, uri: Path) -> dict:
        return {"artifacts": [{"name": key, "type": schema[key], "uri": str(uri)}]}

    executor_input = json_format.ParseDict(
        {
            "inputs": {
                "artifacts": {"model": artifact("model", trainer_model)},
                "parameters": {"base_path": {"stringValue": str(base)}, "batching_params": {"intValue": 0}},
            },
            "outputs": {
                "artifacts": {
                    key: artifact(key, tmp_path / "out" / key) for key in ("pushed_model", "blessing")
                },
                "outputFile": str(tmp_path / "out" / "executor_output.json"),
            },
        },
        pipeline_spec_pb2.ExecutorInput(),
    )
    ids: dict = {}
    inputs = entry.parse_raw_artifact_dict(executor_input.inputs.artifacts, ids)
    outputs = entry.parse_raw_artifact_dict(executor_input.outputs.artifacts, ids)
    properties = entry.parse_execution_properties(
        executor_input.inputs.parameter_values, executor_input.inputs.parameters
    )
    executor_class = import_utils.import_class_by_path(args[args.index("--executor_class_path") + 1])
    executor_class(executor_class.Context(tmp_dir=str(tmp_path / "tmp"), unique_id="1")).Do(
        inputs, outputs, properties
    )

    assert published_versions(base) == [1]
    pushed = artifact_utils.get_single_instance(outputs["pushed_model"])
    assert (
        pushed.get_int_custom_property("pushed"),
        pushed.get_string_custom_property("pushed_version"),
    ) == (
        1,
        "1",
    )
    output = entry.translate_executor_output(outputs, ids)
    blessing = output["blessing"].artifacts[0]
    assert blessing.metadata["blessed"] == 1 and blessing.metadata["push_outcome"] == "published version 1"
