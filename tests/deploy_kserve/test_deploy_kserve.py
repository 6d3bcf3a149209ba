"""deploy_kserve against a stand-in Kubernetes API (tests/kserve_standin.py) and the TF Serving stand-in
(or the real tensorflow_model_server's REST API is not needed: KServe's TensorFlow predictor is TF Serving,
so the stand-in TF Serving plays the predictor's endpoint)."""

from __future__ import annotations

import push_models
import pytest
import yaml
from conftest import published_versions
from kserve_standin import StandInKubernetes
from kubernetes import client
from tf_serving_standin import StandInTFServing

from kfp_tfserving.components.common.errors import PublishError, UserError
from kfp_tfserving.components.deploy_kserve import inference_service as isvc
from kfp_tfserving.components.deploy_kserve.inference_service import KServeOptions, deploy
from kfp_tfserving.components.push_to_serving.publisher import PushOptions, publish
from kfp_tfserving.pipelines.cli.compile import pipeline_yaml

tiny_models = push_models.tiny_models  # session fixtures: tiny SavedModels
tiny_model = push_models.tiny_model

PATH = "/apis/serving.kserve.io/v1beta1/namespaces/models/inferenceservices"
PVC_URI = "pvc://tf-serving-models/tiny"


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch):
    monkeypatch.setattr(isvc, "POLL_SECONDS", 0.02)


def _api(kube: StandInKubernetes):
    return client.ApiClient(client.Configuration(host=kube.url))


def _push(model, base) -> dict:
    result = publish(model, str(base), options=PushOptions())
    return {"pushed": 1, "published": int(result.published), "pushed_version": str(result.version), "base_path": str(base),
            "model_name": "tiny"}  # fmt: skip


def _options(**kw) -> KServeOptions:
    return KServeOptions(**{"namespace": "models", "storage_uri": PVC_URI, "timeout": 30, **kw})


def test_creates_then_patches_the_inference_service_and_verifies_each_version(tmp_path, tiny_models):
    base = tmp_path / "serving" / "tiny"
    first = _push(tiny_models[0], base)
    with StandInTFServing("tiny", base) as serving, StandInKubernetes(serving.url) as kube:
        created = deploy(tiny_models[0], first, _options(), _api(kube))
        (post,) = [r for r in kube.requests if r["method"] == "POST"]
        assert post["path"] == PATH
        assert post["body"]["kind"] == "InferenceService" and post["body"]["metadata"]["name"] == "tiny"
        predictor = post["body"]["spec"]["predictor"]
        assert predictor["tensorflow"] == {"storageUri": PVC_URI, "runtimeVersion": "2.20.0"}
        assert predictor["annotations"] == {isvc.VERSION_ANNOTATION: "1"}
        assert created["created"] is True and created["serving_url"] == serving.url
        assert created["served_version"] == "1"

        second = _push(tiny_models[1], base)
        patched = deploy(tiny_models[1], second, _options(), _api(kube))
        (patch,) = [r for r in kube.requests if r["method"] == "PATCH"]
        assert patch["path"] == f"{PATH}/tiny" and patch["content_type"] == "application/merge-patch+json"
        assert patch["body"]["spec"]["predictor"]["annotations"] == {isvc.VERSION_ANNOTATION: "2"}
        assert patched["created"] is False and patched["served_version"] == "2"
        assert kube.objects[("models", "tiny")]["metadata"]["generation"] == 2
    assert published_versions(base) == [1, 2]


def test_the_runtime_version_matches_the_tf_serving_image_of_containers_serving(repo_root=None):
    from conftest import REPO

    deployment = next(
        m
        for m in yaml.safe_load_all((REPO / "containers/serving/tf-serving.k8s.yaml").read_text())
        if m["kind"] == "Deployment"
    )
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"tensorflow/serving:{isvc.DEFAULT_RUNTIME_VERSION}"
    manifest = yaml.safe_load((REPO / "containers/serving/kserve-inferenceservice.yaml").read_text())
    tensorflow = manifest["spec"]["predictor"]["tensorflow"]
    assert tensorflow["runtimeVersion"] == isvc.DEFAULT_RUNTIME_VERSION
    assert manifest["apiVersion"] == "serving.kserve.io/v1beta1" and tensorflow["storageUri"]


def test_a_version_that_never_becomes_available_is_removed_and_the_predictor_put_back(tmp_path, tiny_models):
    base = tmp_path / "serving" / "tiny"
    first = _push(tiny_models[0], base)
    with StandInTFServing("tiny", base) as serving, StandInKubernetes(serving.url) as kube:
        deploy(tiny_models[0], first, _options(), _api(kube))
        before = kube.objects[("models", "tiny")]["spec"]
        second = _push(tiny_models[1], base)
        # The predictor answers for another model name: version 2 of "tiny" never becomes AVAILABLE there.
        with StandInTFServing("other", tmp_path / "other") as wrong:
            kube.serving_url = wrong.url
            with pytest.raises(PublishError, match="version 2 not AVAILABLE after 2s"):
                deploy(tiny_models[1], second, _options(timeout=2), _api(kube))
        assert kube.objects[("models", "tiny")]["spec"] == before  # annotation back to version 1
    assert published_versions(base) == [1]


def test_an_inference_service_that_never_gets_ready_fails_with_its_reason_and_rolls_back(
    tmp_path, tiny_model
):
    base = tmp_path / "serving" / "tiny"
    pushed = _push(tiny_model, base)
    with StandInKubernetes(ready_after_gets=-1) as kube:
        with pytest.raises(PublishError, match=r"not Ready after 1s \(Revision is not ready yet\)"):
            deploy(tiny_model, pushed, _options(timeout=1), _api(kube))
        assert kube.methods().count("PATCH") == 0  # created by this step: left in place, nothing to restore
    assert published_versions(base) == []


def test_an_unchanged_model_is_verified_but_never_removed(tmp_path, tiny_model):
    base = tmp_path / "serving" / "tiny"
    pushed = {**_push(tiny_model, base), "published": 0}  # as the push reports identical content
    with StandInKubernetes(ready_after_gets=-1) as kube, pytest.raises(PublishError):
        deploy(tiny_model, pushed, _options(timeout=0.2), _api(kube))
    assert published_versions(base) == [1]


@pytest.mark.parametrize(
    "method, status, complaint",
    [
        ("POST", 403, "the Kubernetes API refused 'create' (403); bind the Role"),
        ("GET", 403, "the Kubernetes API refused 'get' (403)"),
        ("POST", 404, "no inferenceservices.serving.kserve.io/v1beta1 resource (404); install KServe"),
    ],
)
def test_api_refusals_are_one_line_and_publish_nothing(tmp_path, tiny_model, method, status, complaint):
    base = tmp_path / "serving" / "tiny"
    pushed = _push(tiny_model, base)
    with StandInKubernetes() as kube:
        kube.refuse[method] = status
        with pytest.raises(UserError) as err:
            deploy(tiny_model, pushed, _options(), _api(kube))
    assert complaint in err.value.one_line() and "\n" not in err.value.one_line()
    assert published_versions(base) == []


def test_a_local_base_path_needs_a_storage_uri_kserve_can_read(tmp_path, tiny_model):
    pushed = {"pushed": 1, "pushed_version": "1", "base_path": "/models/tiny", "model_name": "tiny"}
    with StandInKubernetes() as kube, pytest.raises(UserError, match="pvc://CLAIM/PATH"):
        deploy(tiny_model, pushed, _options(storage_uri=""), _api(kube))
    assert kube.requests == []


def test_serve_model_deploys_only_when_a_namespace_is_given():
    doc = yaml.safe_load(pipeline_yaml("serve_model").read_text())
    (condition,) = [
        c for name, c in doc["components"].items() if name.startswith("comp-condition") and "dag" in c
    ]
    assert set(condition["dag"]["tasks"]) == {"deploy-kserve"}
    (branch,) = [t for t in doc["root"]["dag"]["tasks"].values() if "triggerPolicy" in t]
    assert "kserve_namespace" in branch["triggerPolicy"]["condition"]
    assert doc["root"]["inputDefinitions"]["parameters"]["kserve_namespace"]["defaultValue"] == ""
    retrain = yaml.safe_load(pipeline_yaml("retrain_and_export").read_text())
    assert "kserve_namespace" in retrain["root"]["inputDefinitions"]["parameters"]


def test_the_role_grants_exactly_the_verbs_the_step_uses(tmp_path, tiny_models):
    from conftest import REPO

    role = next(
        d
        for d in yaml.safe_load_all((REPO / "containers/serving/kserve-rbac.yaml").read_text())
        if d["kind"] == "Role"
    )
    (rule,) = role["rules"]
    assert rule["apiGroups"] == ["serving.kserve.io"] and rule["resources"] == ["inferenceservices"]
    # Every request of a create, a patch and a rollback, by HTTP method -> Kubernetes verb.
    base = tmp_path / "serving" / "tiny"
    first = _push(tiny_models[0], base)
    with StandInTFServing("tiny", base) as serving, StandInKubernetes(serving.url) as kube:
        deploy(tiny_models[0], first, _options(), _api(kube))
        kube.serving_url = "http://127.0.0.1:9"  # nothing answers there: the next version is rolled back
        with pytest.raises(PublishError):
            deploy(tiny_models[1], _push(tiny_models[1], base), _options(timeout=1), _api(kube))
    used = {{"GET": "get", "POST": "create", "PATCH": "patch"}[m] for m in kube.methods()}
    assert used == set(rule["verbs"]) == {"get", "create", "patch"}
