"""Compile-time Kubernetes options (kfp-kubernetes): what lands in the platform document, and where."""

from __future__ import annotations

import pytest
import yaml
from click.testing import CliRunner
from conftest import REPO
from google.protobuf import json_format
from kfp.kubernetes import kubernetes_executor_config_pb2 as k8s_pb

from kfp_tfserving.pipelines.cli import main
from kfp_tfserving.pipelines.cli.compile import normalise, pipeline_yaml

OPTIONS = [
    "--pvc", "serving-models:/models",
    "--secret-env", "gcs-key:key.json=GCS_KEY_JSON",
    "--secret-env", "s3-creds:id=AWS_ACCESS_KEY_ID",
    "--secret-env", "s3-creds:secret=AWS_SECRET_ACCESS_KEY",
    "--node-selector", "pool=cpu",
]  # fmt: skip
# The committed example next to the serving manifests, and the command that wrote it (also run by `make compile`).
EXAMPLE = REPO / "containers" / "serving" / "retrain_and_export.pvc.yaml"
EXAMPLE_OPTIONS = [
    "--pipeline", "retrain_and_export", "--pvc", "tf-serving-models:/models",
    "--resources", "export_savedmodel=cpu:2,memory:8Gi",
]  # fmt: skip


def compile_to(tmp_path, name: str, options: list[str]):
    out = tmp_path / f"{name}.yaml"
    result = CliRunner().invoke(main, ["compile", "--pipeline", name, "-o", str(out), *options])
    assert result.exit_code == 0, result.output
    docs = list(yaml.safe_load_all(out.read_text()))
    return out, docs


def container_executors(pipeline_doc: dict) -> dict[str, str]:
    """executor label -> the function its container runs"""
    return {
        label: ex["container"]["args"][-1]
        for label, ex in pipeline_doc["deploymentSpec"]["executors"].items()
        if "container" in ex
    }


@pytest.mark.parametrize("name", ["export_to_serving", "retrain_and_export", "serve_model"])
def test_options_add_only_a_platform_document(tmp_path, name):
    out, docs = compile_to(tmp_path, name, OPTIONS)
    assert len(docs) == 2
    # The pipeline document is the committed one, untouched: options live only in the platform document.
    committed = pipeline_yaml(name).read_text()
    pipeline_text = out.read_text().split("\n---\n")[0] + "\n"
    assert normalise(pipeline_text) == normalise(committed)
    assert "platforms" not in committed


@pytest.mark.parametrize("name", ["export_to_serving", "retrain_and_export"])
def test_pvc_on_the_steps_writing_the_base_path_secrets_and_node_selector_everywhere(tmp_path, name):
    _, (pipeline_doc, platform_doc) = compile_to(tmp_path, name, OPTIONS)
    executors = platform_doc["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    functions = container_executors(pipeline_doc)
    assert set(executors) == set(functions)
    for label, function in functions.items():
        config = executors[label]
        # kfp-kubernetes' own message type must accept it: what the KFP backend will parse.
        json_format.ParseDict(config, k8s_pb.KubernetesExecutorConfig())
        assert config["nodeSelector"]["labels"] == {"pool": "cpu"}
        secrets = {
            s["secretName"]: {k["secretKey"]: k["envVar"] for k in s["keyToEnv"]}
            for s in config["secretAsEnv"]
        }
        assert secrets == {
            "gcs-key": {"key.json": "GCS_KEY_JSON"},
            "s3-creds": {"id": "AWS_ACCESS_KEY_ID", "secret": "AWS_SECRET_ACCESS_KEY"},
        }
        if function in ("push_to_serving", "deploy_kserve"):  # the steps that write the base path
            assert [(m["constant"], m["mountPath"]) for m in config["pvcMount"]] == [
                ("serving-models", "/models")
            ]
        else:
            assert "pvcMount" not in config
    assert "push_to_serving" in functions.values()


def test_a_pvc_alone_touches_only_the_push_step(tmp_path):
    _, (pipeline_doc, platform_doc) = compile_to(tmp_path, "export_to_serving", ["--pvc", "models:/mnt/m"])
    executors = platform_doc["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    (label,) = executors
    assert container_executors(pipeline_doc)[label] == "push_to_serving"
    assert executors[label]["pvcMount"][0]["mountPath"] == "/mnt/m"


def test_the_committed_example_is_a_fresh_compile_and_mounts_the_claim_tf_serving_reads(tmp_path):
    out, docs = compile_to(tmp_path, "example", EXAMPLE_OPTIONS)
    assert normalise(EXAMPLE.read_text()) == normalise(out.read_text()), (
        "run `make compile` and commit containers/serving/retrain_and_export.pvc.yaml"
    )
    manifests = list(yaml.safe_load_all((REPO / "containers/serving/tf-serving.k8s.yaml").read_text()))
    deployment = next(m for m in manifests if m["kind"] == "Deployment")
    (claim,) = [
        v["persistentVolumeClaim"]["claimName"]
        for v in deployment["spec"]["template"]["spec"]["volumes"]
        if "persistentVolumeClaim" in v
    ]
    (mount,) = docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-push-to-serving"][
        "pvcMount"
    ]
    assert mount["constant"] == claim


def test_no_options_leave_the_committed_yamls_option_free():
    for name in ("export_to_serving", "serve_model", "retrain_and_export"):
        assert len(list(yaml.safe_load_all(pipeline_yaml(name).read_text()))) == 1


E2S = ["--pipeline", "export_to_serving"]


@pytest.mark.parametrize(
    "args, complaint",
    [
        ([*E2S, "--pvc", "models"], "--pvc 'models': expected CLAIM:/MOUNT/PATH"),
        ([*E2S, "--pvc", "Models:/m"], "expected CLAIM:/MOUNT/PATH"),
        ([*E2S, "--pvc", "models:relative"], "expected CLAIM:/MOUNT/PATH"),
        ([*E2S, "--secret-env", "creds:key"], "expected SECRET:KEY=ENV_VAR"),
        ([*E2S, "--secret-env", "creds:key=1BAD"], "expected SECRET:KEY=ENV_VAR"),
        ([*E2S, "--node-selector", "pool"], "expected LABEL=VALUE"),
        (["--pipeline", "nope", "--pvc", "m:/m"], "--pipeline nope: no such pipeline"),
    ],
)
def test_bad_options_are_one_line_and_write_nothing(tmp_path, args, complaint):
    out = tmp_path / "out.yaml"
    result = CliRunner().invoke(main, ["compile", "-o", str(out), *args])
    assert result.exit_code == 2
    (line,) = result.output.strip().splitlines()
    assert complaint in line
    assert not out.exists()


def test_options_need_a_pipeline_and_an_output(tmp_path):
    before = pipeline_yaml("export_to_serving").read_text()
    result = CliRunner().invoke(main, ["compile", "--pvc", "m:/m"])
    assert result.exit_code == 2
    assert "--pipeline and --output go together" in result.output
    assert pipeline_yaml("export_to_serving").read_text() == before


def executor_resources(pipeline_doc: dict) -> dict[str, dict]:
    """step function -> its container's resources"""
    return {
        ex["container"]["args"][-1]: ex["container"].get("resources", {})
        for ex in pipeline_doc["deploymentSpec"]["executors"].values()
        if "container" in ex
    }


def test_committed_pipelines_size_every_step_and_give_export_and_check_the_memory():
    doc = yaml.safe_load(pipeline_yaml("export_to_serving").read_text())
    sizes = {step: r.get("resourceMemoryLimit") for step, r in executor_resources(doc).items()}
    assert sizes == {
        "load_model": "1Gi",
        "export_savedmodel": "3Gi",
        "check_signatures": "3Gi",
        "push_to_serving": "1Gi",
    }
    for step, resources in executor_resources(doc).items():
        # request = limit for memory: a pod is not OOM-killed below what it was promised
        assert resources["resourceMemoryRequest"] == resources["resourceMemoryLimit"], step
        assert "resourceCpuRequest" in resources and "resourceCpuLimit" in resources, step
        assert "accelerator" not in resources
    retrain = yaml.safe_load(pipeline_yaml("retrain_and_export").read_text())
    assert executor_resources(retrain)["train_keras_example"]["resourceMemoryLimit"] == "2Gi"


def test_resources_resize_only_the_named_step_and_keep_what_is_not_given(tmp_path):
    committed = yaml.safe_load(pipeline_yaml("export_to_serving").read_text())
    _, docs = compile_to(
        tmp_path,
        "export_to_serving",
        [
            "--resources", "export_savedmodel=cpu:4,memory:16Gi,gpu:1,accelerator:nvidia-tesla-t4",
            "--resources", "check_signatures=memory:12Gi",
        ],
    )  # fmt: skip
    assert len(docs) == 1  # resources live in the pipeline document; no platform document is needed
    before, after = executor_resources(committed), executor_resources(docs[0])
    export = after["export_savedmodel"]
    assert (export["resourceCpuRequest"], export["resourceCpuLimit"]) == ("4", "4")
    assert (export["resourceMemoryRequest"], export["resourceMemoryLimit"]) == ("16Gi", "16Gi")
    assert export["accelerator"]["resourceType"] == "nvidia-tesla-t4"
    assert export["accelerator"]["resourceCount"] == "1"
    check = after["check_signatures"]
    assert (check["resourceMemoryRequest"], check["resourceMemoryLimit"]) == ("12Gi", "12Gi")
    assert check["resourceCpuLimit"] == before["check_signatures"]["resourceCpuLimit"]  # cpu kept
    assert after["load_model"] == before["load_model"]
    assert after["push_to_serving"] == before["push_to_serving"]
    # Nothing but the resources changed.
    for step_doc in (committed, docs[0]):
        for ex in step_doc["deploymentSpec"]["executors"].values():
            ex.get("container", {}).pop("resources", None)
    assert docs[0] == committed


def test_resources_reach_the_steps_of_a_sub_pipeline(tmp_path):
    _, docs = compile_to(
        tmp_path, "retrain_and_export", ["--resources", "export_savedmodel=memory:32Gi", *OPTIONS]
    )
    assert executor_resources(docs[0])["export_savedmodel"]["resourceMemoryLimit"] == "32Gi"
    assert len(docs) == 2  # the other options still make their platform document


def test_a_gpu_without_a_type_gets_the_usual_nvidia_resource(tmp_path):
    _, docs = compile_to(tmp_path, "serve_model", ["--resources", "export_savedmodel=gpu:2"])
    accelerator = executor_resources(docs[0])["export_savedmodel"]["accelerator"]
    assert (accelerator["resourceType"], accelerator["resourceCount"]) == ("nvidia.com/gpu", "2")


@pytest.mark.parametrize(
    "value, complaint",
    [
        ("export_savedmodel", "expected STEP=cpu:N,memory:SIZE"),
        ("export_savedmodel=", "expected STEP=cpu:N,memory:SIZE"),
        ("export_savedmodel=disk:10Gi", "expected STEP=cpu:N,memory:SIZE"),
        ("export_savedmodel=cpu:2,cpu:3", "expected STEP=cpu:N,memory:SIZE"),
        ("export_savedmodel=cpu:two", "cpu 'two' is not a CPU quantity"),
        ("export_savedmodel=memory:16GB", "memory '16GB' is not a memory quantity"),
        ("export_savedmodel=gpu:0", "gpu '0' is not a positive count"),
        ("train_keras_example=cpu:2", "export-to-serving has no such step"),
        ("export-savedmodel=cpu:2", "its steps: check_signatures, export_savedmodel, load_model"),
    ],
)
def test_bad_resources_are_one_line_and_write_nothing(tmp_path, value, complaint):
    out = tmp_path / "out.yaml"
    result = CliRunner().invoke(main, ["compile", *E2S, "-o", str(out), "--resources", value])
    assert result.exit_code == 2, result.output
    (line,) = result.output.strip().splitlines()
    assert complaint in line
    assert not out.exists()


def test_a_step_named_twice_is_refused(tmp_path):
    result = CliRunner().invoke(
        main,
        ["compile", *E2S, "-o", str(tmp_path / "o.yaml"),
         "--resources", "export_savedmodel=cpu:2", "--resources", "export_savedmodel=memory:8Gi"],
    )  # fmt: skip
    assert result.exit_code == 2 and "a step is named twice" in result.output


def test_the_committed_example_sizes_its_export_step():
    pipeline_doc = next(yaml.safe_load_all(EXAMPLE.read_text()))
    assert executor_resources(pipeline_doc)["export_savedmodel"]["resourceMemoryLimit"] == "8Gi"


def test_image_replaces_every_steps_image_and_nothing_else(tmp_path):
    image = "registry.example.invalid:5000/ml/kfp-tfserving-runtime:0.1.0"
    _, docs = compile_to(tmp_path, "retrain_and_export", ["--image", image])
    committed = yaml.safe_load(pipeline_yaml("retrain_and_export").read_text())
    containers = [ex["container"] for ex in docs[0]["deploymentSpec"]["executors"].values()]
    assert len(containers) == 5 and {c["image"] for c in containers} == {image}
    for doc in (docs[0], committed):
        for ex in doc["deploymentSpec"]["executors"].values():
            ex["container"].pop("image")
    assert docs[0] == committed


@pytest.mark.parametrize("image", ["kfp tfserving", "registry/:0.1", "runtime:"])
def test_a_bad_image_is_one_line(tmp_path, image):
    result = CliRunner().invoke(main, ["compile", *E2S, "-o", str(tmp_path / "o.yaml"), "--image", image])
    assert result.exit_code == 2 and "not an image reference" in result.output
