"""The export → check → push chain that every publishing pipeline ends with."""

from typing import Any

from kfp.dsl import PipelineTask

from kfp_tfserving.components.check_signatures.component import check_signatures
from kfp_tfserving.components.export_savedmodel.component import export_savedmodel
from kfp_tfserving.components.push_to_serving.component import push_to_serving


def export_check_push(model: Any, base_path: Any, **settings: Any) -> PipelineTask:
    """Inside a pipeline body: the export → check → push tasks on a Model channel; returns the push task.

    `settings` are the steps' own parameters by name (signature, contract_uri, version_policy, ...), each
    handed to the step that declares it; `tags` (the tag-set TF Serving loads) goes to the export step and,
    as `saved_model_tags`, to the check step, so the check judges the graph the export serves.
    """
    if "tags" in settings:
        settings["saved_model_tags"] = settings["tags"]

    def own(component) -> dict[str, Any]:
        names = component.component_spec.inputs or {}
        return {k: v for k, v in settings.items() if k in names}

    unknown = set(settings) - {
        name
        for c in (export_savedmodel, check_signatures, push_to_serving)
        for name in c.component_spec.inputs
    }
    if unknown:
        raise TypeError(f"no step takes {', '.join(sorted(unknown))}")
    exported = export_savedmodel(model=model, **own(export_savedmodel))
    checked = check_signatures(model=exported.outputs["exported_model"], **own(check_signatures))
    pushed = push_to_serving(
        model=checked.outputs["checked_model"], base_path=base_path, **own(push_to_serving)
    )
    # A scheduled run must publish every time: a cache hit would silently skip the push.
    pushed.set_caching_options(False)
    return pushed
