"""The serving oracle: run a SavedModel the way tensorflow_model_server does, and nothing else.

TF Serving's C++ loader (SavedModelBundle) never restores through the TF2 object graph. It imports the
MetaGraphDef whose tag-set equals the requested one into a TF1 Session, runs the saver_def's restore op
fed with `variables/variables`, runs the init op (the `__saved_model_init_op` signature, else the main_op
or legacy_init_op collection) fed with asset paths inside the version directory, replays the warmup file
(one failing record fails the load) and answers every request with Session::Run on the signature_def's
tensor names. `tf.saved_model.load` hides the failures this exposes (variables the signature reads but
the saver never restores), so every servability verdict in this project comes from here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kfp_tfserving.components.common.errors import UserError, specific_line
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
from kfp_tfserving.components.common.saved_model.warmup import (
    WARMUP_FILE,
    WarmupError,
    WarmupRequest,
    read_warmup,
)
from kfp_tfserving.components.common.tfenv import import_tensorflow, native_logging_off, silenced_stderr

REPAIR_FIX = "kfp-tfserving run repairs such a SavedModel; or export Keras models with model.export()"


class ServingLoadError(UserError):
    """The model server would fail to load this version. `stage`: import, restore, init or warmup."""

    def __init__(self, stage: str, what: str, fix: str | None = None):
        self.stage = stage
        super().__init__(what, fix)


class ServingRunError(UserError):
    """The model server loads the version but fails this request."""


def _meta_graph(model_dir: Path, tags: Tags):
    """The meta graph the server imports; failing to find it fails the load's import stage."""
    try:
        return meta_graph(read_saved_model_proto(model_dir), model_dir, tags)
    except NoMetaGraph as err:
        raise ServingLoadError("import", err.what, err.fix) from None


@dataclass(frozen=True)
class _Feed:
    key: str
    tensor: str
    dtype: type  # numpy dtype
    shape: tuple[int | None, ...] | None  # the graph tensor's static shape; None: unknown rank

    def refuses(self, shape: tuple[int, ...]) -> bool:
        """session.run's check: a known rank must match, and every known dimension."""
        if self.shape is None:
            return False
        if len(shape) != len(self.shape):
            return True
        return any(want is not None and want != got for want, got in zip(self.shape, shape, strict=True))


class _RequestPlan:
    """A signature's feeds and fetches resolved once, run through one C++ Session callable.

    The server answers with a C++ Session::Run on the signature's names; from Python the closest path is a
    callable (Session::MakeCallable) over the same feeds and fetches. session.run instead rebuilds its feed
    and fetch handling in Python on every call, about 0.1 ms, a third of a small model's whole request.
    """

    def __init__(self, tf, session, sig):
        self.feeds = [
            _Feed(k, t.name, tf.dtypes.as_dtype(t.dtype).as_numpy_dtype, _static_shape(session.graph, t.name))
            for k, t in sig.inputs.items()
        ]
        self.keys = {f.key for f in self.feeds}
        self.fetch_keys = list(sig.outputs)
        self.fetch_names = [sig.outputs[k].name for k in self.fetch_keys]
        self._session = session
        from tensorflow.core.protobuf import config_pb2

        self.native_logging_off = native_logging_off()
        try:
            spec = config_pb2.CallableOptions(feed=[f.tensor for f in self.feeds], fetch=self.fetch_names)
            with silenced_stderr():  # builds the executors: grappler and MLIR say their piece here
                self._callable = session._make_callable_from_options(spec)
        except Exception:
            self._callable = None  # session.run below then names what is wrong with the signature

    def run(self, values: list[np.ndarray]) -> Tensors:
        if self._callable is None:
            feeds = {f.tensor: v for f, v in zip(self.feeds, values, strict=True)}
            outputs = self._session.run(self.fetch_names, feeds)
        else:
            outputs = self._callable(*values)
        return {k: np.asarray(v) for k, v in zip(self.fetch_keys, outputs, strict=True)}


def _static_shape(graph, name: str) -> tuple[int | None, ...] | None:
    try:
        shape = graph.get_tensor_by_name(name).shape
    except (KeyError, ValueError):
        return None
    return None if shape.rank is None else tuple(shape.as_list())


class ServedModel:
    """One loaded version: a TF1 Session over the chosen meta graph, as the model server holds it."""

    def __init__(self, model_dir: Path, tags: Tags = SERVE):
        tf = import_tensorflow()
        from tensorflow.python.saved_model import loader_impl

        self.model_dir = Path(model_dir)
        self.meta = _meta_graph(self.model_dir, tags)
        self.signatures: dict[str, SignatureInfo] = signatures_of(self.meta)
        self._plans: dict[str, _RequestPlan] = {}
        self.graph = tf.Graph()
        self.session = tf.compat.v1.Session(graph=self.graph)
        try:
            with self.graph.as_default(), silenced_stderr():
                self._import(tf)
                self._restore()
                init_op = self._init_op(loader_impl)
                if init_op is not None:
                    assets = loader_impl.get_asset_tensors(str(self.model_dir), self.meta)
                    self._run("init", init_op, assets)
        except BaseException:
            self.close()
            raise

    def _import(self, tf) -> None:
        try:
            tf.compat.v1.train.import_meta_graph(self.meta, clear_devices=True)
        except Exception as err:
            raise ServingLoadError(
                "import",
                f"{self.model_dir}: the graph does not import into a session: {specific_line(err)}",
                "the graph uses ops or attributes this TensorFlow does not know; export it again",
            ) from None

    def _init_op(self, loader_impl):
        try:
            return loader_impl.get_init_op(self.meta)
        except Exception:  # the signature or collection names an op the graph does not have
            raise ServingLoadError(
                "init",
                f"{self.model_dir}: the init op named by the SavedModel is not in its graph",
                "export the model again; do not edit the SavedModel's init op by hand",
            ) from None

    def _restore(self) -> None:
        saver = self.meta.saver_def
        prefix = self.model_dir / "variables" / "variables"
        if not saver.restore_op_name or not Path(f"{prefix}.index").exists():
            return  # the C++ loader skips the restore as well: a model without variables
        self._run("restore", saver.restore_op_name, {saver.filename_tensor_name: str(prefix)})

    def _run(self, stage: str, fetches, feeds: dict):
        try:
            return self.session.run(fetches, feeds)
        except Exception as err:
            what = {"restore": "restoring the variables", "init": "running the init op"}[stage]
            raise ServingLoadError(
                stage,
                f"{self.model_dir}: {what} fails as TF Serving runs it: {specific_line(err)}",
                "export the model again from its source; check that every file under variables/ and "
                "assets/ is present",
            ) from None

    def close(self) -> None:
        self._plans.clear()  # release the callables while their session is open
        self.session.close()

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
            plan = self._plans[name] = _RequestPlan(
                import_tensorflow(), self.session, self._signature_def(name)
            )
        return plan

    def predict(self, inputs: Tensors, signature: str = SERVING_DEFAULT) -> Tensors:
        """A Predict request: every signature input fed by name, every output fetched."""
        plan = self._request_plan(signature)
        if inputs.keys() != plan.keys:
            raise ServingRunError(
                f"{signature}: the request sends inputs {sorted(inputs)}, the signature takes "
                f"{sorted(plan.keys)}",
                "send exactly the signature's inputs",
            )
        values = [np.asarray(inputs[f.key], dtype=f.dtype) for f in plan.feeds]
        for feed, value in zip(plan.feeds, values, strict=True):
            if feed.refuses(value.shape):  # what session.run refused before any op ran: same verdict
                raise ServingRunError(
                    f"{signature}: the request fails as TF Serving runs it: Cannot feed value of shape "
                    f"{value.shape} for Tensor {feed.tensor}, which has shape {feed.shape}",
                    "check the request against the signature, and the model's graph",
                )
        try:
            # A request needs no fd-2 guard when TF logs nothing: the dup2 pair costs 15-25 us around a
            # 0.1 ms request (the one-time graph optimisation ran silenced when the plan was made).
            if plan.native_logging_off:
                return plan.run(values)
            with silenced_stderr():
                return plan.run(values)
        except Exception as err:
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
        """Variables a signature reads that neither the restore op nor the init op initialised."""
        tf = import_tensorflow()
        names = [signature] if signature else list(self.signatures)
        wanted = {
            t.name.split(":")[0].lstrip("^")
            for name in names
            for t in self.meta.signature_def[name].outputs.values()
        }
        reachable = _ancestors(self.meta.graph_def, wanted)
        handles = [n for n in self.meta.graph_def.node if n.op in VARIABLE_OPS and n.name in reachable]
        if not handles:
            return []
        with self.graph.as_default():
            probes = [
                tf.raw_ops.VarIsInitializedOp(resource=self.graph.get_tensor_by_name(f"{n.name}:0"))
                if n.op == "VarHandleOp"
                else tf.compat.v1.is_variable_initialized(self.graph.get_tensor_by_name(f"{n.name}:0"))
                for n in handles
            ]
        states = self.session.run(probes)
        return [
            (n.attr["shared_name"].s.decode() or n.name) if n.op == "VarHandleOp" else n.name
            for n, ok in zip(handles, states, strict=True)
            if not ok
        ]


def _ancestors(graph_def, names: set[str]) -> set[str]:
    inputs = {n.name: [i.lstrip("^").split(":")[0] for i in n.input] for n in graph_def.node}
    seen, stack = set(), list(names)
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        stack.extend(inputs.get(name, ()))
    return seen


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
