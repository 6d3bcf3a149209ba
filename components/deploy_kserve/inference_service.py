"""Serve a published version through KServe: create or patch an InferenceService whose TensorFlow predictor
(TF Serving) reads the model base path, wait until it is Ready, verify the version live, roll back if not.

KServe's storage initializer copies `storageUri` into the predictor pod once, when the pod starts; TF Serving
then serves the newest version it finds there. So a new version reaches KServe only through a new pod: the
step writes the version into a predictor annotation, which rolls the predictor out again.

API calls (the RBAC the pipeline's service account needs, see README): get, create and patch on
`inferenceservices.serving.kserve.io` in the target namespace. Nothing here imports kfp.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kfp_tfserving.components.common.artifacts import PushedModelMetadata
from kfp_tfserving.components.common.errors import PublishError, UserError, reports_errors
from kfp_tfserving.components.common.storage import storage_for
from kfp_tfserving.components.deploy_kserve.options import DEPLOY_OPTIONS
from kfp_tfserving.components.push_to_serving.live_server import verify_live
from kfp_tfserving.components.push_to_serving.versions import remove_version

GROUP, API_VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
VERSION_ANNOTATION = "kfp-tfserving/model-version"
# The TF Serving release of containers/serving's tensorflow/serving image: the same server, two ways.
DEFAULT_RUNTIME_VERSION = DEPLOY_OPTIONS.default("runtime_version")
POLL_SECONDS = 1.0
_RBAC_FIX = "bind the Role in components/deploy_kserve/README.md to the pipeline's service account"


@dataclass
class KServeOptions:
    namespace: str
    name: str = DEPLOY_OPTIONS.default("name")  # meanings and defaults: deploy_kserve/options.py
    storage_uri: str = DEPLOY_OPTIONS.default("storage_uri")
    runtime_version: str = DEPLOY_OPTIONS.default("runtime_version")
    timeout: float = DEPLOY_OPTIONS.default("timeout")
    sample: Path | None = None


def predictor_patch(storage_uri: str, runtime_version: str, version: str) -> dict[str, Any]:
    return {
        "annotations": {VERSION_ANNOTATION: version},
        "tensorflow": {"storageUri": storage_uri, "runtimeVersion": runtime_version},
    }


def inference_service(name: str, namespace: str, predictor: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{API_VERSION}",
        "kind": "InferenceService",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/managed-by": "kfp-tfserving"}},
        "spec": {"predictor": predictor},
    }  # fmt: skip


def _restore_patch(previous: dict[str, Any]) -> dict[str, Any]:
    """A merge patch putting back what predictor_patch changed (None deletes a key that was absent)."""
    tensorflow = previous.get("tensorflow") or {}
    return {
        "annotations": {VERSION_ANNOTATION: (previous.get("annotations") or {}).get(VERSION_ANNOTATION)},
        "tensorflow": {k: tensorflow.get(k) for k in ("storageUri", "runtimeVersion")},
    }


class InferenceServices:
    """The three calls the step makes, with the API's failures turned into one-line errors."""

    def __init__(self, api_client: Any, namespace: str):
        from kubernetes import client

        self.api = client.CustomObjectsApi(api_client)
        self.namespace = namespace

    def _call(self, verb: str, name: str, fn, *args) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            return fn(GROUP, API_VERSION, self.namespace, PLURAL, *args)
        except ApiException as err:
            where = f"inferenceservices/{name} in namespace {self.namespace}"
            if err.status == 404 and verb == "get":
                return None
            if err.status in (401, 403):
                raise UserError(
                    f"{where}: the Kubernetes API refused '{verb}' ({err.status})", _RBAC_FIX
                ) from None
            if err.status == 404:
                raise UserError(
                    f"{where}: no {PLURAL}.{GROUP}/{API_VERSION} resource (404)",
                    "install KServe in the cluster",
                ) from None
            raise PublishError(f"{where}: '{verb}' failed ({err.status} {err.reason})") from None
        except (HTTPError, OSError) as err:
            raise PublishError(f"the Kubernetes API is unreachable ({type(err).__name__})") from None

    def get(self, name: str) -> dict[str, Any] | None:
        return self._call("get", name, self.api.get_namespaced_custom_object, name)

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("create", body["metadata"]["name"], self.api.create_namespaced_custom_object, body)

    def patch_predictor(self, name: str, predictor: dict[str, Any]) -> dict[str, Any]:
        body = {"spec": {"predictor": predictor}}
        return self._call("patch", name, self.api.patch_namespaced_custom_object, name, body)


def _ready_url(obj: dict[str, Any]) -> str:
    """The URL to send requests to once the latest spec is Ready: the in-cluster address first."""
    status = obj.get("status") or {}
    generation = (obj.get("metadata") or {}).get("generation", 0)
    if status.get("observedGeneration", generation) < generation:
        return ""
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions", []))
    return ((status.get("address") or {}).get("url") or status.get("url") or "") if ready else ""


def wait_ready(services: InferenceServices, name: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        obj = services.get(name) or {}
        url = _ready_url(obj)
        if url:
            return url
        if time.monotonic() >= deadline:
            conditions = (obj.get("status") or {}).get("conditions", [])
            why = next(
                (c.get("message") or c.get("reason") for c in conditions if c.get("status") != "True"), ""
            )
            raise PublishError(
                f"inferenceservices/{name} in namespace {services.namespace}: not Ready after {timeout:.0f}s"
                + (f" ({why})" if why else ""),
                "see `kubectl describe inferenceservice` and the predictor pod's log",
            )
        time.sleep(POLL_SECONDS)


def deploy(
    model_dir: Path, pushed: dict[str, Any], options: KServeOptions, api_client: Any
) -> dict[str, Any]:
    """Point the InferenceService at the pushed version and prove it serves it; returns what was done.

    On any failure the version is removed from the base path again (if this run published it) and the
    InferenceService's predictor is put back as it was, as the push step does with a live TF Serving.
    """
    pushed_model = PushedModelMetadata.from_dict(pushed)
    version, base = pushed_model.pushed_version, pushed_model.base_path
    if not version or not base:
        raise PublishError(
            "the pushed model carries no pushed_version/base_path", "connect push_to_serving's output"
        )
    name = options.name or pushed_model.model_name
    storage_uri = options.storage_uri or base
    if "://" not in storage_uri:
        raise UserError(
            f"storage_uri {storage_uri!r}: KServe reads a URI (gs://, s3://, pvc://CLAIM/PATH)",
            "for a base path on a PVC give kserve_storage_uri=pvc://CLAIM/PATH",
        )
    services = InferenceServices(api_client, options.namespace)
    desired = predictor_patch(storage_uri, options.runtime_version, version)
    existing: dict[str, Any] | None = None
    previous: dict[str, Any] | None = None  # the predictor to put back if the new version fails
    try:
        existing = services.get(name)
        previous = (existing or {}).get("spec", {}).get("predictor")
        if existing is None:
            services.create(inference_service(name, options.namespace, desired))
            print(f"created inferenceservices/{name} in {options.namespace} ({storage_uri})", flush=True)
        else:
            services.patch_predictor(name, desired)
            print(f"patched inferenceservices/{name} in {options.namespace}: version {version}", flush=True)
        url = wait_ready(services, name, options.timeout)
        verify_live(url, name, int(version), model_dir, timeout=options.timeout, sample=options.sample)
        print(f"{url}: version {version} is AVAILABLE and answers like the export", flush=True)
    except BaseException:
        # Only a version this run wrote is taken back; `pushed` is also 1 for an unchanged model (TFX's rule).
        if pushed_model.published:
            remove_version(storage_for(base), base, int(version))
            print(f"removed version {version} again: it failed verification on KServe", flush=True)
        if previous is not None:
            services.patch_predictor(name, _restore_patch(previous))
            print(f"inferenceservices/{name}: predictor put back as it was", flush=True)
        raise
    return {
        "inference_service": name,
        "namespace": options.namespace,
        "storage_uri": storage_uri,
        "runtime_version": options.runtime_version,
        "serving_url": url,
        "served_version": version,
        "created": existing is None,
    }


def api_client_from_environment() -> Any:
    """In a pod: its service account; elsewhere: the current kubeconfig context."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        try:
            config.load_kube_config()
        except (config.ConfigException, OSError):
            raise UserError(
                "no Kubernetes credentials (not in a pod, no kubeconfig)",
                "run in the cluster or set KUBECONFIG",
            ) from None
    return client.ApiClient()


def deploy_step(
    model_dir: Path, pushed: dict[str, Any], options: KServeOptions, out_metadata: dict[str, Any]
) -> dict[str, Any]:
    result = deploy(model_dir, pushed, options, api_client_from_environment())
    out_metadata.update(result)
    return result


run_deploy_step = reports_errors(deploy_step)
