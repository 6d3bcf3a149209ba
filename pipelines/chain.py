"""The export → check → push chain that every publishing pipeline ends with, and every step's pod settings.

Sizes (README "Step resources"): measured peak RSS is ~0.7 GB + 2.2 × the model for export and
~0.7 GB + 1.15 × the model for check; load and push stream and stay under 100 MB whatever the size. The
defaults below fit models up to ~1.2 GB; `kfp-tfserving compile --resources STEP=...` resizes a step.
Memory request = limit: the node reserves all of it, and a pod using more than its request is the first
to be evicted or OOM-killed when the node runs short.
"""

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from kfp import dsl
from kfp.dsl import PipelineTask

from kfp_tfserving.components.check_signatures.component import check_signatures
from kfp_tfserving.components.check_signatures.options import CHECK_OPTIONS
from kfp_tfserving.components.export_savedmodel.component import export_savedmodel
from kfp_tfserving.components.export_savedmodel.options import EXPORT_OPTIONS
from kfp_tfserving.components.push_to_serving.component import push_to_serving
from kfp_tfserving.components.push_to_serving.options import PUSH_OPTIONS
from kfp_tfserving.pipelines.parameters import CHAIN

# step -> (cpu request, cpu limit, memory request = limit)
STEP_RESOURCES: dict[str, tuple[str, str, str]] = {
    "load_model": ("500m", "1", "1Gi"),
    "train_keras_example": ("1", "2", "2Gi"),
    # README "Step resources" (benchmarks/bench_step_memory.py): export 1 GiB + 1.3 x the model (~1.5 GB
    # models); check 1 GiB + 1.3 x (one load: the batching load test runs in the loaded session): ~1.5 GB.
    "export_savedmodel": ("1", "2", "3Gi"),
    "check_signatures": ("1", "2", "3Gi"),
    "push_to_serving": ("500m", "2", "1Gi"),  # copies on one core, flushes the previous file from another
    "deploy_kserve": ("500m", "1", "2Gi"),  # runs the model once for the smoke request's expected answer
}
# Load and push only read or write storage, and a push restarted after a crash is safe (its protocol
# finishes or discards what the dead attempt left). Export and check are deterministic: a bad model fails
# the same way every time, so they are not retried. KFP retries a failed pod whatever its exit code.
RETRIED_STEPS = ("load_model", "push_to_serving")
RETRIES = 3
BACKOFF = {"backoff_duration": "30s", "backoff_factor": 2.0, "backoff_max_duration": "600s"}


# Pod settings for every task a pipeline builds while it is set, after the step's defaults: how
# `kfp-tfserving compile --pvc/--resources/--image ...` applies kfp-kubernetes and the resources to the
# tasks themselves (pipelines/cli/kubernetes_options.py); unset for the committed YAMLs.
POD_SETTINGS: ContextVar[Callable[[PipelineTask, str], Any] | None] = ContextVar("pod_settings", default=None)


def sized(task: PipelineTask, step: str) -> PipelineTask:
    """Give a task its step's resources and, for the storage-only steps, retries with backoff; then the
    POD_SETTINGS in force."""
    cpu_request, cpu_limit, memory = STEP_RESOURCES[step]
    task.set_cpu_request(cpu_request).set_cpu_limit(cpu_limit)
    task.set_memory_request(memory).set_memory_limit(memory)
    if step in RETRIED_STEPS:
        task.set_retry(num_retries=RETRIES, **BACKOFF)
    configure = POD_SETTINGS.get()
    if configure is not None:
        configure(task, step)
    return task


def export_check_push(model: Any, base_path: Any, **settings: Any) -> PipelineTask:
    """Inside a pipeline body: the export → check → push tasks on a Model channel; returns the push task."""
    return export_check_push_tasks(model, base_path, **settings)[1]


def export_check_push_tasks(model: Any, base_path: Any, **settings: Any) -> tuple[PipelineTask, PipelineTask]:
    """The same chain; returns (check task, push task), for a step that needs the checked model too.

    `settings` are the chain's parameters (pipelines/parameters.py CHAIN, and `model_name`); each step takes
    the ones its options declare. `tags` (the tag-set TF Serving loads) goes to the export, the check and
    the push alike: one parameter, so the check judges and the push verifies the graph the export serves.
    """
    unknown = set(settings) - set(CHAIN) - {"model_name"}
    if unknown:
        raise TypeError(f"no step takes {', '.join(sorted(unknown))}")
    exported = sized(export_savedmodel(model=model, **EXPORT_OPTIONS.pick(settings)), "export_savedmodel")
    checked = sized(
        check_signatures(model=exported.outputs["exported_model"], **CHECK_OPTIONS.pick(settings)),
        "check_signatures",
    )
    pushed = sized(
        push_to_serving(
            model=checked.outputs["checked_model"],
            base_path=base_path,
            run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,  # recorded in the manifest, read by `runs`
            **PUSH_OPTIONS.pick(settings),
        ),
        "push_to_serving",
    )
    # A scheduled run must publish every time: a cache hit would silently skip the push.
    pushed.set_caching_options(False)
    return checked, pushed
