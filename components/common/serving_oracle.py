"""The serving oracle: run a SavedModel the way tensorflow_model_server does, and nothing else.

The judge is TensorFlow's own C++ loader, reached through its C API (the tf_c_api package):
`TF_LoadSessionFromSavedModel` is `tensorflow::LoadSavedModel`, the function TF Serving's
SavedModelBundleFactory calls (tag-set match, the graph into a DirectSession with its devices as written,
saver restore, init op fed with the asset paths), and every request is `TF_SessionRun` (Session::Run) on
the signature_def's tensor names. What the server adds on top is re-implemented here and tested against
its source: a Predict request's exact input keys and all outputs fetched, the method-name rules of
Classify and Regress, and the warmup replay at load (at most 1000 records, one failing record fails the
load). Python's loaders drift from the C++ one (`tf.saved_model.load` hides variables the saver never
restores, the TF1 loader feeds a duplicated asset once), so every servability verdict comes from here.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kfp_tfserving.components.common import tf_c_api
from kfp_tfserving.components.common.errors import UserError, specific_line
from kfp_tfserving.components.common.load_stage import LOAD_FIXES, STAGE_TEXT, load_stage
from kfp_tfserving.components.common.saved_model.graph_nodes import upstream
from kfp_tfserving.components.common.saved_model.proto import (
    SERVING_DEFAULT,
    VARIABLE_OPS,
    NoMetaGraph,
    SignatureInfo,
    meta_graph,
    read_saved_model_proto,
    signatures_of,
)
from kfp_tfserving.components.common.saved_model.tags import SERVE, Tags
from kfp_tfserving.components.common.saved_model.tensor_spec import Tensors
from kfp_tfserving.components.common.saved_model.tf_protos import tf_proto_module
from kfp_tfserving.components.common.saved_model.warmup import (
    WARMUP_FILE,
    WarmupError,
    WarmupRequest,
    read_warmup,
)
from kfp_tfserving.components.common.tfenv import native_logging_off, silenced_stderr

REPAIR_FIX = "kfp-tfserving run repairs such a SavedModel; or export Keras models with model.export()"


class ServingLoadError(UserError):
    """The model server would fail to load this version. `stage`: import, restore, init or warmup."""

    def __init__(self, stage: str, what: str, fix: str | None = None):
        self.stage = stage
        super().__init__(what, fix)


class ServingRunError(UserError):
    """The model server loads the version but fails this request."""


def server_session_config() -> bytes:
    """The ConfigProto tensorflow_model_server gives every SavedModel session when started with its
    defaults (server.cc: per_process_gpu_memory_fraction 0, session parallelism 0 = TensorFlow chooses,
    empty rewrite options; no allow_soft_placement, so a device the machine lacks fails the load).

    The server also names the session (experimental.session_metadata = model name and version); that is
    left out: the name is the deployment's, and DirectSession refuses a second session of one name and
    version, which the server never opens but checks in one process do.
    """
    config = tf_proto_module("tensorflow.core.protobuf.config_pb2").ConfigProto(
        intra_op_parallelism_threads=0, inter_op_parallelism_threads=0
    )
    config.gpu_options.per_process_gpu_memory_fraction = 0
    config.graph_options.rewrite_options.SetInParent()
    config.gpu_options.SetInParent()
    return config.SerializeToString()


@dataclass(frozen=True)
class _Feed:
    key: str
    tensor: str
    dtype: np.dtype  # the signature's dtype: a request is parsed to it (REST) before it reaches the graph


class _RequestPlan:
    """A signature's feeds and fetches resolved once into one TF_SessionRun argument set."""

    def __init__(self, model: tf_c_api.SavedModelSession, sig, fetches: list[tf_c_api.Output] | None = None):
        self.feeds = [
            _Feed(k, t.name, tf_c_api.numpy_dtype(t.dtype) or np.dtype(object)) for k, t in sig.inputs.items()
        ]
        self.keys = {f.key for f in self.feeds}
        self.fetch_keys = list(sig.outputs)
        names = [f.tensor for f in self.feeds] + [sig.outputs[k].name for k in self.fetch_keys]
        missing = [n for n in names if not _in_graph(model, n)]
        self.missing = missing
        self.native_logging_off = native_logging_off()
        self._runner = None
        # DirectSession builds a feed/fetch set's executors on its first run, outside its lock: requests
        # arriving together would each build them (16 threads: 11 s). The first run goes alone.
        self._first_run = threading.Lock()
        self._ran = False
        if not missing:
            self._runner = model.runner(
                [model.output(f.tensor) for f in self.feeds],
                fetches
                if fetches is not None
                else [model.output(sig.outputs[k].name) for k in self.fetch_keys],
            )

    def run(self, values: list[np.ndarray]) -> Tensors:
        if not self._ran:
            with self._first_run:
                if not self._ran:
                    outputs = self._runner.run(values)
                    self._ran = True
                    return dict(zip(self.fetch_keys, outputs, strict=True))
        return dict(zip(self.fetch_keys, self._runner.run(values), strict=True))


def _in_graph(model: tf_c_api.SavedModelSession, name: str) -> bool:
    try:
        model.output(name)
    except KeyError:
        return False
    return True


class ServedModel:
    """One loaded version: the session TensorFlow's C++ loader made of the chosen meta graph."""

    def __init__(self, model_dir: Path, tags: Tags = SERVE):
        meta_graph_pb2 = tf_proto_module("tensorflow.core.protobuf.meta_graph_pb2")
        self.model_dir = Path(model_dir)
        self._plans: dict[str, _RequestPlan] = {}
        self._probes: dict[tuple[str, ...], tuple[list[str], object]] = {}
        self._lock = threading.Lock()
        self._plan_lock = threading.Lock()
        try:
            with silenced_stderr():  # LoadSavedModel logs each stage at INFO
                self.model = tf_c_api.SavedModelSession(self.model_dir, tags, server_session_config())
        except tf_c_api.CApiError as err:
            try:  # no meta graph with the tag-set: this project's own words for it
                meta_graph(read_saved_model_proto(self.model_dir), self.model_dir, tags)
            except NoMetaGraph as missing:
                raise ServingLoadError("import", missing.what, missing.fix) from None
            except UserError:
                pass  # a damaged proto: the C API's message says it
            stage = load_stage(err.message, self.model_dir, tags)
            raise ServingLoadError(
                stage,
                f"{self.model_dir}: {STAGE_TEXT[stage]} as TF Serving loads it: {specific_line(err)}",
                LOAD_FIXES[stage],
            ) from None
        self.meta = meta_graph_pb2.MetaGraphDef.FromString(self.model.meta_graph_def)
        self.signatures: dict[str, SignatureInfo] = signatures_of(self.meta)

    def close(self) -> None:
        self._plans.clear()
        self.model.close()

    def __enter__(self) -> ServedModel:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- requests ------------------------------------------------------------------------------------

    def _signature_def(self, name: str):
        if name not in self.meta.signature_def or name.startswith("__"):
            raise ServingRunError(
                f"{self.model_dir}: no signature '{name}' (it has {sorted(self.signatures)})",
                "name one of the model's signatures",
            )
        return self.meta.signature_def[name]

    def _request_plan(self, name: str) -> _RequestPlan:
        plan = self._plans.get(name)
        if plan is None:
            with self._plan_lock:  # concurrent first requests build a signature's plan once
                plan = self._plans.get(name)
                if plan is None:
                    plan = self._plans[name] = _RequestPlan(self.model, self._signature_def(name))
        return plan

    def predict(self, inputs: Tensors, signature: str = SERVING_DEFAULT) -> Tensors:
        """A Predict request: every signature input fed by name, every output fetched."""
        return self._request(self._request_plan(signature), inputs, signature)

    def predictor(self, signature: str, fetches: list[tf_c_api.Output]) -> Callable[[Tensors], Tensors]:
        """predict() on the signature's feeds with `fetches` (tensors added to the loaded graph, one per
        signature output in its order) fetched in place of the signature's outputs."""
        plan = _RequestPlan(self.model, self._signature_def(signature), fetches)
        return functools.partial(self._request, plan, signature=signature)

    def _request(self, plan: _RequestPlan, inputs: Tensors, signature: str) -> Tensors:
        if inputs.keys() != plan.keys:
            raise ServingRunError(
                f"{signature}: the request sends inputs {sorted(inputs)}, the signature takes "
                f"{sorted(plan.keys)}",
                "send exactly the signature's inputs",
            )
        if plan.missing:
            raise ServingRunError(
                f"{signature}: the request fails as TF Serving runs it: the signature names "
                f"{', '.join(plan.missing)}, which the loaded graph does not have",
                "export the model again; do not edit its signatures by hand",
            )
        try:
            values = [np.asarray(inputs[f.key], dtype=f.dtype) for f in plan.feeds]
        except (TypeError, ValueError) as err:  # what TF Serving's request parsing refuses
            raise ServingRunError(
                f"{signature}: the request's values do not convert to the signature's dtypes: {err}",
                "check the request against the signature",
            ) from None
        try:
            # A request needs no fd-2 guard when TF logs nothing: the dup2 pair costs 15-25 us around a
            # 0.1 ms request.
            if plan.native_logging_off:
                return plan.run(values)
            with silenced_stderr():
                return plan.run(values)
        except tf_c_api.CApiError as err:
            raise ServingRunError(
                f"{signature}: the request fails as TF Serving runs it: {specific_line(err)}",
                self._run_fix(err),
            ) from None

    def _run_fix(self, err: Exception) -> str:
        text = str(err)
        if "Could not find variable" in text or "uninitialized" in text.lower():
            return REPAIR_FIX
        return "check the request against the signature, and the model's graph"

    def classify(self, examples: np.ndarray, signature: str = SERVING_DEFAULT) -> Tensors:
        """A Classify request: serialized tf.Examples into the signature's `inputs` tensor."""
        return self._example_request(examples, signature, "classify")

    def regress(self, examples: np.ndarray, signature: str = SERVING_DEFAULT) -> Tensors:
        """A Regress request: serialized tf.Examples into the signature's `inputs` tensor."""
        return self._example_request(examples, signature, "regress")

    def _example_request(self, examples: np.ndarray, signature: str, kind: str) -> Tensors:
        sig = self._signature_def(signature)
        if sig.method_name != f"tensorflow/serving/{kind}":
            raise ServingRunError(
                f"{signature}: a {kind} request needs a signature with method tensorflow/serving/{kind} "
                f"(it has {sig.method_name or 'none'})",
                f"call a {kind} signature, or use predict",
            )
        return self.predict({"inputs": np.asarray(examples, dtype=object).reshape(-1)}, signature)

    def replay(self, request: WarmupRequest) -> Tensors:
        signature = request.signature or SERVING_DEFAULT
        if request.kind == "predict":
            return self.predict(request.inputs, signature)
        return self._example_request(request.inputs["inputs"], signature, request.kind)

    def replay_warmup(self) -> int:
        """Replay the version's warmup file as the server does at load; the number of records replayed."""
        path = self.model_dir / WARMUP_FILE
        if not path.exists():
            return 0
        try:
            requests = read_warmup(path)
        except WarmupError as err:
            raise ServingLoadError(
                "warmup", f"{WARMUP_FILE}: {err}", "rewrite the warmup file or delete it to regenerate it"
            ) from None
        for request in requests:
            try:
                self.replay(request)
            except ServingRunError as err:
                raise ServingLoadError(
                    "warmup",
                    f"{WARMUP_FILE} record {request.index} fails, so TF Serving refuses the version: {err.what}",
                    "regenerate the warmup file from the current signature",
                ) from None
        return len(requests)

    # -- diagnosis -----------------------------------------------------------------------------------

    def unrestored_variables(self, signature: str | None = None) -> list[str]:
        """Variables a signature reads that neither the restore op nor the init op initialised.

        The C++ loader does not say which variables it left alone; asking the session does: a
        VarIsInitializedOp (resource variables) or IsVariableInitialized (TF1 ref variables) per variable,
        added to the loaded graph and run in the same session the requests run in.
        """
        names = tuple([signature] if signature else sorted(self.signatures))
        with self._lock:
            probed = self._probes.get(names)
            if probed is None:
                probed = self._probes[names] = self._variable_probes(names)
        variables, runner = probed
        if not variables:
            return []
        states = runner.run([])
        return [name for name, ok in zip(variables, states, strict=True) if not bool(ok)]

    def _variable_probes(self, names: tuple[str, ...]):
        wanted = [t.name for name in names for t in self.meta.signature_def[name].outputs.values()]
        reachable = upstream(self.meta.graph_def, wanted)
        handles = [n for n in self.meta.graph_def.node if n.op in VARIABLE_OPS and n.name in reachable]
        probes, variables = [], []
        for node in handles:
            handle = self.model.output(node.name)
            if node.op == "VarHandleOp":
                probes.append(self.model.add_operation("VarIsInitializedOp", [handle], {}))
                variables.append(node.attr["shared_name"].s.decode() or node.name)
            else:
                dtype = node.attr["dtype"].type
                probes.append(self.model.add_operation("IsVariableInitialized", [handle], {"dtype": dtype}))
                variables.append(node.name)
        return variables, (self.model.runner([], probes) if probes else None)


def unrestored_variables_problem(missing: list[str]) -> str:
    more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
    return (
        f"the signatures read variables the saver_def never restores ({', '.join(missing[:3])}{more}); "
        "TF Serving fails every request with 'Could not find variable'"
    )


def servability_problem(served: ServedModel) -> str | None:
    """Why the model server would fail every request of a loaded model that loads fine; None if nothing."""
    missing = served.unrestored_variables()
    return unrestored_variables_problem(missing) if missing else None


@contextlib.contextmanager
def load_served(model_dir: Path, tags: Tags = SERVE, replay_warmup: bool = True) -> Iterator[ServedModel]:
    """Load `model_dir` as tensorflow_model_server loads a version (warmup replay included)."""
    with ServedModel(Path(model_dir), tuple(tags)) as served:
        if replay_warmup:
            served.replay_warmup()
        yield served
