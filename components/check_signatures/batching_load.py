"""Proof under concurrent load: the chosen parameters in TensorFlow's own batch scheduler, against no batching.

TF Serving's `--enable_batching` puts the batch scheduler of tensorflow/core/kernels/batching_util in front
of the session; TensorFlow's `BatchFunction` op runs on the same scheduler. `batched_predictor` adds that
op to the loaded model's own session, calling the serving function on the same inputs and the same
variables (nothing is loaded or restored again: the test costs no second copy of the weights), with the
chosen max_batch_size, batch_timeout_micros, allowed_batch_sizes, num_batch_threads and
max_enqueued_batches: concurrent single-example requests are queued, merged (padded to an allowed size),
run as one call and split again, as the model server does. The oracle's requests release the GIL, so N
client threads really are N requests in flight.

`prove` alternates the model alone and the model behind the scheduler, each replayed by the same N closed-loop clients
(each sends its next request when its answer arrives), and compares throughput and p50/p99 latency.
Batching pays when the batched side's throughput beats the model's by WORTH_DOUBLING's 10 % in the
pairs' lower quartile (4 of 5 pairs): the noise counts against batching.
"""

from __future__ import annotations

import math
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kfp_tfserving.components.check_signatures.batching_params import BatchingConfig
from kfp_tfserving.components.check_signatures.batching_rule import WORTH_DOUBLING, robust

if TYPE_CHECKING:
    from kfp_tfserving.components.common.saved_model.tensor_spec import Tensors

MAX_CLIENTS = 64
PAIRS = 5
WARMUP_SHARE = 0.15  # of each side's time: the first batches at each allowed size pay for allocations
_CALLS = ("StatefulPartitionedCall", "PartitionedCall")


class NotLoadTestable(Exception):
    """The serving graph has no shape the batch scheduler can be put in front of."""


def _tensor(name: str) -> str:
    return name if ":" in name else f"{name}:0"


def batch_function_node(meta, config: BatchingConfig, signature: str):
    """The signature's function call in `meta` (a MetaGraphDef) as a BatchFunction NodeDef (a new one).

    TF2 exports (Keras `export`, `tf.saved_model.save`) answer a signature with one (Stateful)PartitionedCall
    whose first inputs are the request tensors and whose others are captured variables: BatchFunction
    takes exactly that split (in_tensors batched, captured_tensors passed whole) and calls the same
    function on the merged batch; its outputs are the call's, in the same order.
    """
    from kfp_tfserving.components.common.saved_model.tf_protos import tf_proto_module

    node_def_pb2 = tf_proto_module("tensorflow.core.framework.node_def_pb2")

    sig = meta.signature_def[signature]
    feeds = {_tensor(t.name) for t in sig.inputs.values()}
    producers = {_tensor(t.name).rsplit(":", 1)[0] for t in sig.outputs.values()}
    if len(producers) != 1:
        raise NotLoadTestable(f"'{signature}' outputs come from {len(producers)} ops, not one function call")
    (name,) = producers
    call = next((n for n in meta.graph_def.node if n.name == name), None)
    if call is None or call.op not in _CALLS:
        raise NotLoadTestable(f"'{signature}' outputs do not come from a function call (a TF1 graph)")
    data = [i for i in call.input if not i.startswith("^")]
    batched = len(feeds)
    if {_tensor(i) for i in data[:batched]} != feeds or feeds & {_tensor(i) for i in data[batched:]}:
        raise NotLoadTestable(f"'{signature}' calls its function with other tensors than its request")
    tin, tout = list(call.attr["Tin"].list.type), list(call.attr["Tout"].list.type)
    node = node_def_pb2.NodeDef(name=f"{call.name}/kfp_tfserving_batched", op="BatchFunction")
    node.input.extend(data)
    attr = node.attr
    attr["f"].func.name = call.attr["f"].func.name
    attr["Tin"].list.type.extend(tin[:batched])
    attr["Tcaptured"].list.type.extend(tin[batched:])
    attr["Tout"].list.type.extend(tout)
    attr["num_batch_threads"].i = config.num_batch_threads
    attr["max_batch_size"].i = config.max_batch_size
    attr["batch_timeout_micros"].i = config.batch_timeout_micros
    attr["max_enqueued_batches"].i = config.max_enqueued_batches
    attr["allowed_batch_sizes"].list.i.extend(config.allowed_batch_sizes)
    attr["container"].s = b""
    attr["shared_name"].s = f"kfp_tfserving_batch_{uuid.uuid4().hex}".encode()
    attr["batching_queue"].s = b""
    attr["enable_large_batch_splitting"].b = False
    return node


def batched_predictor(served, config: BatchingConfig, signature: str) -> Callable[[Tensors], Tensors]:
    """predict() on `signature` of the loaded model `served` through the batch scheduler.

    The BatchFunction goes into the loaded session's graph (the session takes it in on its next run), its
    captured inputs the variable handles the signature's call already reads: the weights are shared, not
    restored a second time, so the load test costs no second copy of the model.
    """
    from kfp_tfserving.components.common.tf_c_api import Output

    node = batch_function_node(served.meta, config, signature)
    model = served.model
    split = len(node.attr["Tin"].list.type)
    inputs = [model.output(i) for i in node.input]
    attrs = {key: value.SerializeToString() for key, value in node.attr.items()}
    name = f"{node.name}_{uuid.uuid4().hex[:8]}"  # one per load test: a graph's node names are unique
    op = model.add_node(node.op, name, [inputs[:split], inputs[split:]], attrs)
    sig = served.meta.signature_def[signature]
    fetches = [Output(op, int(_tensor(sig.outputs[key].name).rsplit(":", 1)[1])) for key in sig.outputs]
    return served.predictor(signature, fetches)


def replay(request: Callable[[], Any], clients: int, seconds: float) -> dict[str, float]:
    """`clients` threads each calling request() back to back for `seconds`: throughput and latencies."""
    stop = threading.Event()
    latencies: list[float] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def client() -> None:
        mine = []
        try:
            while not stop.is_set():
                t0 = time.perf_counter()
                request()
                mine.append(time.perf_counter() - t0)
        except BaseException as err:  # noqa: BLE001 - re-raised in the caller's thread below
            failures.append(err)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, name=f"load-client-{i}", daemon=True) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    stop.wait(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise failures[0]
    return stats(latencies, elapsed)


def _percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))] if ordered else math.nan


def stats(latencies: list[float], elapsed: float) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "requests": len(ordered),
        "throughput": len(ordered) / elapsed if elapsed > 0 else 0.0,
        "p50_ms": _percentile(ordered, 0.50) * 1000,
        "p99_ms": _percentile(ordered, 0.99) * 1000,
    }


def compare(
    sides: dict[str, Callable[[], Any]], clients: int, seconds: float, pairs: int = PAIRS
) -> dict[str, Any]:
    """Replay the two sides ("unbatched", "batched") alternately, `pairs` times, `seconds` each in all.

    Throughput and p50/p99 per side are the medians of its turns; the ratio is the median of the per-pair
    ratios, its spread their half-IQR relative to it.
    """
    per_turn = seconds / (2 * pairs)
    for request in sides.values():  # warm both: first batches at each padded size allocate
        replay(request, clients, per_turn * WARMUP_SHARE)
    runs: dict[str, list[dict[str, float]]] = {side: [] for side in sides}
    for _ in range(pairs):
        for side, request in sides.items():
            runs[side].append(replay(request, clients, per_turn * (1 - WARMUP_SHARE)))
    ratios = [
        b["throughput"] / u["throughput"] if u["throughput"] else math.inf
        for u, b in zip(runs["unbatched"], runs["batched"], strict=True)
    ]
    ratio, spread = robust(ratios)
    out: dict[str, Any] = {"clients": clients, "pairs": pairs, "ratios": ratios, "throughput_ratio": ratio}
    out["ratio_spread"] = spread
    for side, turns in runs.items():
        out[side] = {
            "throughput": statistics.median(t["throughput"] for t in turns),
            "requests": sum(t["requests"] for t in turns),
            # per-turn percentiles, the median turn: one slow turn moves neither
            "p50_ms": statistics.median(t["p50_ms"] for t in turns),
            "p99_ms": statistics.median(t["p99_ms"] for t in turns),
        }
    # The noise counts against batching only: the pairs' lower quartile (4 of 5 pairs; the worst of fewer)
    # must beat 10 %. One pair whose unbatched turn was starved by other work cannot make it pay, and one
    # whose batched turn was cannot stop it.
    out["pays"] = lower_quartile(ratios) > WORTH_DOUBLING
    return out


def lower_quartile(values: list[float]) -> float:
    ordered = sorted(values)
    if len(ordered) < 4:
        return ordered[0]
    return statistics.quantiles(ordered, n=4, method="inclusive")[0]


def clients_for(config: BatchingConfig) -> int:
    """Enough clients to fill a max-size batch on every batch thread."""
    return max(2, min(MAX_CLIENTS, config.max_batch_size * config.num_batch_threads))


def prove(served, config: BatchingConfig, signature: str, seconds: float) -> dict[str, Any]:
    """The load test of `config` on the loaded model `served` (its model_dir holds the SavedModel).

    Returns compare()'s figures plus `verdict` (one sentence), or `skipped` when it could not run.
    """
    from kfp_tfserving.components.common.samples import generate_inputs

    started = time.perf_counter()
    clients = clients_for(config)
    request = generate_inputs(served.signatures[signature].inputs, batch=1)
    try:
        batched = batched_predictor(served, config, signature)
    except NotLoadTestable as err:
        return {"skipped": f"not load-tested: {err}"}
    try:
        # One request each before any concurrency: the oracle prepares a signature's request path on first
        # use (the session takes the BatchFunction in), and 64 clients arriving at once would each wait.
        served.predict(request, signature=signature)
        batched(request)
        left = max(1.0, seconds - (time.perf_counter() - started))
        out = compare(
            {
                "unbatched": lambda: served.predict(request, signature=signature),
                "batched": lambda: batched(request),
            },
            clients,
            left,
        )
    except Exception as err:  # the scheduler refused the model: no proof either way
        text = str(getattr(err, "what", err)).strip().splitlines()
        return {"skipped": f"not load-tested: the batched model failed: {text[0] if text else err}"}
    u, b = out["unbatched"], out["batched"]
    summary = (
        f"{clients} concurrent single-example clients: {b['throughput']:,.0f} requests/s batched against "
        f"{u['throughput']:,.0f} unbatched (medians; pair by pair {out['throughput_ratio']:.2f}x, spread "
        f"±{out['ratio_spread']:.0%}); "
        f"p99 {b['p99_ms']:.1f} ms against {u['p99_ms']:.1f} ms"
    )
    out["verdict"] = (
        f"batching pays: {summary}"
        if out["pays"]
        else f"batching does not pay under load on these CPUs: {summary}; no batching_params.pbtxt"
    )
    return out
