"""Kubernetes settings for the pipelines' pods, applied at compile time through kfp-kubernetes.

Two ways in:
- in your own pipeline, call `options.configure(task, step)` (or `options.apply(task, push=...)` for the pod
  options alone) on each task;
- for a committed pipeline, `compile_with_options` (the CLI's `kfp-tfserving compile --pvc ...`) builds it
  afresh with the options applied to each task as it is created (through `chain.POD_SETTINGS`), and compiles
  that; the committed YAMLs stay option-free.

Which step gets what: the push step (and deploy_kserve, which removes a version that fails on KServe)
mounts the PVC TF Serving reads (they write the versions there); secrets
(storage credentials) and node selectors go to every step, since load, train and push all reach storage;
`--resources STEP=...` replaces that step's CPU, memory or accelerator (the pipelines' own defaults are in
pipelines/chain.py); `--image` names the runtime image as the nodes pull it. Resources and image live in the
pipeline document's executors, the rest in the platform document.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from kfp import compiler, kubernetes
from kfp.dsl import PipelineTask
from kfp.dsl.graph_component import GraphComponent

from kfp_tfserving.components.common.errors import UserError
from kfp_tfserving.pipelines.chain import POD_SETTINGS

# The steps that write the base path: they mount the PVC TF Serving reads.
BASE_PATH_WRITERS = ("push_to_serving", "deploy_kserve")
_K8S_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CPU = re.compile(r"^(\d+(\.\d+)?|\d+m)$")  # 2, 0.5, 500m
_MEMORY = re.compile(r"^\d+(\.\d+)?(Ki|Mi|Gi|Ti|K|M|G|T)?$")  # 16Gi, 512Mi, 2G
_RESOURCES_FIX = "e.g. --resources export_savedmodel=cpu:2,memory:16Gi (add gpu:1,accelerator:TYPE for GPUs)"
DEFAULT_ACCELERATOR = "nvidia.com/gpu"


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
class StepResources:
    """One step's sizing; request = limit, so the scheduler reserves what the step may use."""

    step: str
    cpu: str = ""
    memory: str = ""
    gpu: int = 0
    accelerator: str = ""

    def apply(self, task: PipelineTask) -> PipelineTask:
        if self.cpu:
            task.set_cpu_request(self.cpu).set_cpu_limit(self.cpu)
        if self.memory:
            task.set_memory_request(self.memory).set_memory_limit(self.memory)
        if self.gpu or self.accelerator:
            task.set_accelerator_type(self.accelerator or DEFAULT_ACCELERATOR)
            task.set_accelerator_limit(self.gpu or 1)
        return task


@dataclass(frozen=True)
class KubernetesOptions:
    pvcs: tuple[PvcMount, ...] = ()
    secret_envs: tuple[SecretEnv, ...] = ()
    node_selectors: tuple[tuple[str, str], ...] = field(default=())
    resources: tuple[StepResources, ...] = ()
    image: str = ""  # the runtime image as your nodes pull it, e.g. REGISTRY/kfp-tfserving-runtime:0.1.0

    def is_empty(self) -> bool:
        return not (self.pvcs or self.secret_envs or self.node_selectors or self.resources or self.image)

    def configure(self, task: PipelineTask, step: str) -> PipelineTask:
        """Everything for one task of `step`: its resources, the image, and the pod options."""
        for resources in self.resources:
            if resources.step == step:
                resources.apply(task)
        if self.image:
            task.set_container_image(self.image)
        return self.apply(task, push=step in BASE_PATH_WRITERS)

    def apply(self, task: PipelineTask, *, push: bool) -> PipelineTask:
        """Set this task's pod options; the PVC only on the steps that write the base path."""
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


def parse_resources(text: str) -> StepResources:
    """`STEP=cpu:2,memory:16Gi[,gpu:1,accelerator:TYPE]`; STEP is the step's function name."""
    step, sep, rest = text.partition("=")
    bad = UserError(
        f"--resources {text!r}: expected STEP=cpu:N,memory:SIZE[,gpu:N,accelerator:TYPE]", _RESOURCES_FIX
    )
    if not sep or not step or not rest:
        raise bad
    fields: dict[str, str] = {}
    for item in rest.split(","):
        key, colon, value = item.partition(":")
        if not colon or key not in ("cpu", "memory", "gpu", "accelerator") or not value or key in fields:
            raise bad
        fields[key] = value
    if "cpu" in fields and not _CPU.match(fields["cpu"]):
        raise UserError(
            f"--resources {text!r}: cpu {fields['cpu']!r} is not a CPU quantity", "write 2, 0.5 or 500m"
        )
    if "memory" in fields and not _MEMORY.match(fields["memory"]):
        raise UserError(
            f"--resources {text!r}: memory {fields['memory']!r} is not a memory quantity",
            "write 16Gi or 512Mi",
        )
    if "gpu" in fields and not (fields["gpu"].isdigit() and int(fields["gpu"]) > 0):
        raise UserError(
            f"--resources {text!r}: gpu {fields['gpu']!r} is not a positive count", _RESOURCES_FIX
        )
    return StepResources(
        step,
        fields.get("cpu", ""),
        fields.get("memory", ""),
        int(fields.get("gpu", 0)),
        fields.get("accelerator", ""),
    )


def parse_image(text: str) -> str:
    """`[REGISTRY/]NAME[:TAG][@sha256:DIGEST]`; whitespace or an empty name is refused."""
    name = text.split("@", 1)[0].rsplit("/", 1)[-1].split(":", 1)[0]
    if not name or any(c.isspace() for c in text) or text.endswith((":", "/", "@")):
        raise UserError(
            f"--image {text!r}: not an image reference", "e.g. --image REGISTRY/kfp-tfserving-runtime:0.1.0"
        )
    return text


def options_from_cli(
    pvcs: tuple[str, ...],
    secret_envs: tuple[str, ...],
    node_selectors: tuple[str, ...],
    resources: tuple[str, ...] = (),
    image: str = "",
) -> KubernetesOptions:
    parsed = tuple(parse_resources(r) for r in resources)
    steps = [r.step for r in parsed]
    if len(set(steps)) != len(steps):
        raise UserError("--resources: a step is named twice", "give each step once, with all its settings")
    return KubernetesOptions(
        pvcs=tuple(parse_pvc(p) for p in pvcs),
        secret_envs=tuple(parse_secret_env(s) for s in secret_envs),
        node_selectors=tuple(parse_node_selector(n) for n in node_selectors),
        resources=parsed,
        image=parse_image(image) if image else "",
    )


def with_options(name: str, options: KubernetesOptions) -> GraphComponent:
    """The committed pipeline `name` built afresh with `options` applied to each of its tasks (and its
    sub-pipeline's) as `chain.sized` creates them: kfp-kubernetes and kfp's own task settings write the
    spec, nothing is patched afterwards."""
    module = _pipeline_module(name)
    steps: list[str] = []

    def configure(task: PipelineTask, step: str) -> None:
        steps.append(step)
        options.configure(task, step)

    token = POD_SETTINGS.set(configure)
    try:
        pipeline = module.build()
    finally:
        POD_SETTINGS.reset(token)
    unknown = [r.step for r in options.resources if r.step not in steps]
    if unknown:
        raise UserError(
            f"--resources {unknown[0]}: {pipeline.name} has no such step",
            f"its steps: {', '.join(sorted(set(steps)))}",
        )
    return pipeline


def _pipeline_module(name: str):
    import importlib

    from kfp_tfserving.pipelines.cli.compile import PIPELINE_MODULES

    modules = {module.rsplit(".", 1)[1]: module for module in PIPELINE_MODULES}
    if name not in modules:
        raise UserError(f"--pipeline {name}: no such pipeline", f"use one of {', '.join(modules)}")
    return importlib.import_module(modules[name])


def compile_with_options(name: str, options: KubernetesOptions, output: Path) -> Path:
    pipeline = with_options(name, options)
    output.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(pipeline, str(output))
    return output
