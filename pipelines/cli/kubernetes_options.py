"""Kubernetes settings for the pipelines' pods, applied at compile time through kfp-kubernetes.

Two ways in:
- in your own pipeline, call `options.apply(task, push=...)` on each task;
- for a committed pipeline, `compile_with_options` (the CLI's `kfp-tfserving compile --pvc ...`) writes a
  copy whose Kubernetes platform document carries the settings; the committed YAMLs stay option-free.

Which step gets what: the push step mounts the PVC TF Serving reads (it writes the versions there); secrets
(storage credentials) and node selectors go to every step, since load, train and push all reach storage.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path

from kfp import compiler, dsl, kubernetes
from kfp.dsl import PipelineTask

from kfp_tfserving.components.common.errors import UserError

# The function the push step's container calls (the last container arg of its executor).
PUSH_FUNCTION = "push_to_serving"
_K8S_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class PvcMount:
    claim: str
    mount_path: str


@dataclass(frozen=True)
class SecretEnv:
    secret: str
    key: str
    env: str


@dataclass(frozen=True)
class KubernetesOptions:
    pvcs: tuple[PvcMount, ...] = ()
    secret_envs: tuple[SecretEnv, ...] = ()
    node_selectors: tuple[tuple[str, str], ...] = field(default=())

    def is_empty(self) -> bool:
        return not (self.pvcs or self.secret_envs or self.node_selectors)

    def apply(self, task: PipelineTask, *, push: bool) -> PipelineTask:
        """Set this task's pod options; the PVC only on the push step."""
        if push:
            for pvc in self.pvcs:
                kubernetes.mount_pvc(task, pvc_name=pvc.claim, mount_path=pvc.mount_path)
        by_secret: dict[str, dict[str, str]] = {}
        for item in self.secret_envs:
            by_secret.setdefault(item.secret, {})[item.key] = item.env
        for secret, key_to_env in by_secret.items():
            kubernetes.use_secret_as_env(task, secret_name=secret, secret_key_to_env=key_to_env)
        for key, value in self.node_selectors:
            kubernetes.add_node_selector(task, label_key=key, label_value=value)
        return task


def parse_pvc(text: str) -> PvcMount:
    """`CLAIM:/mount/path`."""
    claim, sep, mount_path = text.partition(":")
    if not sep or not _K8S_NAME.match(claim) or not mount_path.startswith("/"):
        raise UserError(f"--pvc {text!r}: expected CLAIM:/MOUNT/PATH", "e.g. --pvc serving-models:/models")
    return PvcMount(claim, mount_path)


def parse_secret_env(text: str) -> SecretEnv:
    """`SECRET:KEY=ENV_VAR`: the secret's key KEY becomes the environment variable ENV_VAR."""
    secret, sep, rest = text.partition(":")
    key, eq, env = rest.partition("=")
    if not (sep and eq and _K8S_NAME.match(secret) and key and _ENV_NAME.match(env)):
        raise UserError(
            f"--secret-env {text!r}: expected SECRET:KEY=ENV_VAR",
            "e.g. --secret-env s3-creds:access_key=AWS_ACCESS_KEY_ID",
        )
    return SecretEnv(secret, key, env)


def parse_node_selector(text: str) -> tuple[str, str]:
    """`LABEL=VALUE`."""
    key, sep, value = text.partition("=")
    if not sep or not key or "/" in value:
        raise UserError(f"--node-selector {text!r}: expected LABEL=VALUE", "e.g. --node-selector pool=cpu")
    return key, value


def options_from_cli(
    pvcs: tuple[str, ...], secret_envs: tuple[str, ...], node_selectors: tuple[str, ...]
) -> KubernetesOptions:
    return KubernetesOptions(
        pvcs=tuple(parse_pvc(p) for p in pvcs),
        secret_envs=tuple(parse_secret_env(s) for s in secret_envs),
        node_selectors=tuple(parse_node_selector(n) for n in node_selectors),
    )


@dsl.container_component
def _probe():
    return dsl.ContainerSpec(image="probe")


def executor_config(options: KubernetesOptions, *, push: bool) -> dict:
    """The Kubernetes executor config kfp-kubernetes writes for one task with these options."""
    from google.protobuf import json_format

    @dsl.pipeline(name="kubernetes-options-probe")
    def probe():
        options.apply(_probe(), push=push)

    spec = json_format.MessageToDict(probe.platform_spec)
    executors = spec.get("platforms", {}).get("kubernetes", {}).get("deploymentSpec", {}).get("executors", {})
    return next(iter(executors.values()), {})


def with_options(pipeline: dsl.graph_component.GraphComponent, options: KubernetesOptions):
    """A copy of a compiled pipeline whose platform spec applies `options` to every container step."""
    from google.protobuf import struct_pb2

    configured = copy.deepcopy(pipeline)
    if options.is_empty():
        return configured
    executors = configured.pipeline_spec.deployment_spec["executors"]
    deployment = configured.platform_spec.platforms["kubernetes"].deployment_spec
    configs = {push: executor_config(options, push=push) for push in (False, True)}
    for label, executor in executors.items():
        config = (
            configs[executor["container"]["args"][-1] == PUSH_FUNCTION] if "container" in executor else {}
        )
        if not config:
            continue
        body = deployment.executors[label] if label in deployment.executors else struct_pb2.Struct()
        body.update(config)
        deployment.executors[label].CopyFrom(body)
    return configured


def committed_pipeline(name: str) -> dsl.graph_component.GraphComponent:
    """The pipeline object of a committed pipeline module, by name (export_to_serving, ...)."""
    import importlib

    from kfp_tfserving.pipelines.cli.compile import PIPELINE_MODULES

    modules = {module.rsplit(".", 1)[1]: module for module in PIPELINE_MODULES}
    if name not in modules:
        raise UserError(f"--pipeline {name}: no such pipeline", f"use one of {', '.join(modules)}")
    return getattr(importlib.import_module(modules[name]), name)


def compile_with_options(pipeline, options: KubernetesOptions, output: Path) -> Path:
    output.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(with_options(pipeline, options), str(output))
    return output
