"""The batching measurement: sweep the batch sizes, decide, prove the decision under concurrent load.

The entry point is `measure_and_write` (the check step, after its verdict) or `measure` (the CLI's
`check --batching`, which publishes nothing). Both run `serving_default` through the serving oracle.

The sweep (`sweep`) first probes 1, 2, 4, ... up to 256: two calls per size (the first pays for
allocations at the new shape), stopping two doublings after throughput last rose by 5 %, or when a call
no longer fits the budget. It then times every probed size in ROUNDS interleaved rounds (ascending, then
descending, so a slow spell of the machine falls on every size alike), each visit long enough to hold
several calls of a small size. `batching_rule.decide` turns the per-round samples into parameters or into
"batching does not pay". `batching_load.prove` then replays concurrent single-example clients against the
model with TensorFlow's own batch scheduler in front of it and against the model alone; the file is
written only when the scheduler wins.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kfp_tfserving.components.check_signatures.batching_params import write_batching_params
from kfp_tfserving.components.check_signatures.batching_rule import Decision, decide
from kfp_tfserving.components.common.formats.base import TensorSpecInfo

if TYPE_CHECKING:  # the oracle imports TensorFlow's protos: only where the sweep runs
    from kfp_tfserving.components.common.serving_oracle import ServedModel

DEFAULT_BUDGET_SECONDS = 15.0
SWEEP_SHARE = 0.55  # of the budget; the load test has the rest
MAX_BATCH = 256
ROUNDS = 5
PROBE_RISE = 1.05  # the probe goes on while throughput keeps rising by 5 % ...
PROBE_PATIENCE = 3  # ... or for this many doublings after it last did


def probe(
    run_batch: Callable[[int], Any],
    seconds: float,
    max_batch: int = MAX_BATCH,
    clock: Callable[[], float] = time.perf_counter,
    cpu_clock: Callable[[], float] = time.process_time,
) -> dict[int, float]:
    """{batch: wall seconds of one warm call} for the sizes worth sweeping (see the module's docstring)."""
    per_call: dict[int, float] = {}
    started, best, flat = clock(), 0.0, 0
    batch = 1
    while batch <= max_batch:
        run_batch(batch)  # allocations at the new shape
        t0, c0 = clock(), cpu_clock()
        run_batch(batch)
        per_call[batch] = took = max(clock() - t0, 1e-9)
        cost = max(cpu_clock() - c0, 1e-9)
        if batch / cost > best * PROBE_RISE:
            best, flat = batch / cost, 0
        else:
            flat += 1
        # Stop past the knee, or when the next size (about twice as long a call) in every round would not fit.
        if flat >= PROBE_PATIENCE or clock() - started + 2 * took * (2 + ROUNDS) > seconds:
            break
        batch *= 2
    return per_call


@dataclass
class Samples:
    """Per batch size, one figure per round: a visit's CPU seconds (`cost`) and wall seconds (`wall`) per
    call. (Not the visit's cheapest call: a small size makes many more calls per visit than a large one,
    and the minimum of more calls is lower, which would bias the curve toward small sizes.)"""

    cost: dict[int, list[float]]
    wall: dict[int, list[float]]


def sweep(
    run_batch: Callable[[int], Any],
    budget_seconds: float = DEFAULT_BUDGET_SECONDS * SWEEP_SHARE,
    max_batch: int = MAX_BATCH,
    clock: Callable[[], float] = time.perf_counter,
    rounds: int = ROUNDS,
    cpu_clock: Callable[[], float] = time.process_time,
) -> Samples:
    """The probed sizes timed in interleaved rounds, on both clocks."""
    deadline = clock() + budget_seconds
    per_call = probe(run_batch, budget_seconds / 3, max_batch, clock, cpu_clock)
    sizes = sorted(per_call)
    out = Samples({b: [] for b in sizes}, {b: [] for b in sizes})
    for done in range(rounds):
        if done >= 3 and clock() > deadline:  # a machine much busier than the probe saw: three will do
            break
        # Each round shares out what is left of the budget, by the calls' latest wall time: a machine that
        # got busier gets fewer calls per visit, not fewer rounds.
        visit = max(0.0, deadline - clock()) / ((rounds - done) * len(sizes))
        calls = {b: max(1, int(visit / per_call[b])) for b in sizes}
        for batch in sizes if done % 2 == 0 else reversed(sizes):
            t0, c0 = clock(), cpu_clock()
            for _ in range(calls[batch]):
                run_batch(batch)
            per_call[batch] = (clock() - t0) / calls[batch]
            out.cost[batch].append((cpu_clock() - c0) / calls[batch])
            out.wall[batch].append(per_call[batch])
    return out


def has_variable_length(specs: list[TensorSpecInfo]) -> bool:
    """True when some input has an unknown rank or an unknown dimension besides the batch dimension."""
    return any(spec.shape is None or any(d is None for d in spec.shape[1:]) for spec in specs)


def batchable(specs: list[TensorSpecInfo]) -> str:
    """Why requests to these inputs cannot be batched, or '' when they can."""
    for spec in specs:
        if spec.shape is not None and (not spec.shape or spec.shape[0] is not None):
            return f"input '{spec.name}' has no variable batch dimension ({spec.describe()})"
    return ""


def _curve(decision: Decision) -> list[dict[str, Any]]:
    return [{**asdict(s), "throughput": s.throughput} for s in decision.curve]


def measure(
    served: ServedModel,
    budget_seconds: float = DEFAULT_BUDGET_SECONDS,
    serving_cpus: int = 0,
    signature: str = "serving_default",
    tags: tuple[str, ...] = ("serve",),
) -> tuple[dict[str, Any], Decision | None]:
    """Sweep, decide and prove on a loaded model; (what the report shows, the decision if there is one).

    The result's `publish` says whether the parameters earned a file: the sweep chose a size above 1 and
    the load test found the batch scheduler faster than the model alone (or could not run: then the
    sweep's verdict stands and the report says it was not load-tested).
    """
    from kfp_tfserving.components.check_signatures import batching_load
    from kfp_tfserving.components.common.samples import generate_inputs

    started = time.perf_counter()
    info = served.signatures.get(signature)
    if info is None:
        return {"skipped": f"no '{signature}' signature", "publish": False}, None
    reason = batchable(info.inputs)
    if reason:
        return {"skipped": f"not batchable: {reason}", "publish": False}, None
    feeds: dict[int, Any] = {}

    def run_batch(batch: int) -> None:
        if batch not in feeds:
            feeds[batch] = generate_inputs(info.inputs, batch=batch)
        served.predict(feeds[batch], signature=signature)

    samples = sweep(run_batch, budget_seconds * SWEEP_SHARE)
    feeds.clear()
    sweep_seconds = time.perf_counter() - started
    cpus = serving_cpus or os.cpu_count() or 1
    decision = decide(samples.cost, cpus, has_variable_length(info.inputs), samples.wall)
    result: dict[str, Any] = {
        "points": _curve(decision),
        "serving_cpus": cpus,
        "decision": decision.reason,
        "throughput_batch_1": decision.curve[0].throughput,
        "throughput_chosen": decision.chosen.throughput,
        "publish": decision.config is not None,
        "seconds": {"sweep": round(sweep_seconds, 2)},
    }
    if decision.config is None:
        return result, decision
    result["parameters"] = asdict(decision.config)
    remaining = budget_seconds - (time.perf_counter() - started)
    load = batching_load.prove(served, decision.config, signature, max(remaining, 2.0))
    result["load_test"] = load
    result["seconds"]["load_test"] = round(time.perf_counter() - started - sweep_seconds, 2)
    if "verdict" in load:
        result["publish"] = load["pays"]
    return result, decision


def measure_and_write(
    staged: Path,
    budget_seconds: float = DEFAULT_BUDGET_SECONDS,
    serving_cpus: int = 0,
    signature: str = "serving_default",
    tags: tuple[str, ...] = ("serve",),
    served: ServedModel | None = None,
    write: bool = True,
) -> dict[str, Any]:
    """Measure the model in `staged` and write batching_params.pbtxt next to it when batching pays.

    `write=False` (`check --batching`) measures and reports only.
    `served`: the oracle's session over `staged` when the caller has one loaded already (the runtime checks'
    session: loading 500 MB of variables a second time would only repeat the restore).
    """
    from kfp_tfserving.components.common.serving_oracle import load_served

    loaded = contextlib.nullcontext(served) if served else load_served(staged, tags=tags, replay_warmup=False)
    with loaded as model:
        result, decision = measure(model, budget_seconds, serving_cpus, signature, tags)
    if write and result["publish"] and decision is not None and decision.config is not None:
        result["file"] = write_batching_params(decision.config, staged).name
    return result
