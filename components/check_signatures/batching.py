"""Measure the model's throughput/latency curve through the serving oracle and derive TF Serving's batching.

The sweep runs `serving_default` as TF Serving runs it (the serving oracle: a TF1 session over the {serve}
graph, fed by the signature's tensor names) at batch sizes 1, 2, 4, ... up to 256, until the time budget
is spent, or up to the first doubling that no longer buys 10 % (nothing past it can be chosen). Each size
is timed until two consecutive calls agree within 5 % (time_batch). From the curve:

- max_batch_size: the largest size reached while each doubling still bought >= 10 % more throughput;
  beyond it, a bigger batch only makes every request in it wait longer.
- allowed_batch_sizes: the swept sizes up to it (TF Serving pads a batch up to the next one).
- batch_timeout_micros: the latency of one batch at that size: a request waits at most about one batch's
  compute time for others to join, so batching costs at worst one more batch of latency.
- num_batch_threads: the serving machine's CPU count (batches run in parallel on the cores).
- max_enqueued_batches: enough queued batches to hold about one second of work; beyond that TF Serving
  answers UNAVAILABLE at once instead of letting requests time out in the queue.
- pad_variable_length_inputs: when an input has a variable non-batch dimension, requests of different
  lengths can only be batched if TF Serving pads them.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kfp_tfserving.components.check_signatures.batching_params import BatchingConfig, write_batching_params
from kfp_tfserving.components.common.formats.base import TensorSpecInfo

if TYPE_CHECKING:  # the oracle imports TensorFlow's protos: only where the sweep runs
    from kfp_tfserving.components.common.serving_oracle import ServedModel

DEFAULT_BUDGET_SECONDS = 15.0
MAX_BATCH = 256
WORTH_DOUBLING = 1.10  # a doubling must buy at least 10 % more throughput
QUEUE_SECONDS = 1.0
STABLE = 0.05  # two consecutive calls within 5 % of each other: the latency at this size is known
# When calls keep disagreeing (a busy machine), stop after this many calls or seconds at one size and take
# the median of all but the first call (which may have paid for allocating at the new shape).
_MAX_CALLS, _MAX_SECONDS = 8, 1.0


@dataclass
class SweepPoint:
    batch: int
    latency_ms: float  # one call at this batch size (time_batch: two agreeing calls, else a median)
    calls: int  # calls timed at this size

    @property
    def throughput(self) -> float:
        """Examples per second."""
        return self.batch / (self.latency_ms / 1000) if self.latency_ms > 0 else float("inf")


def time_batch(
    run_batch: Callable[[int], Any],
    batch: int,
    clock: Callable[[], float] = time.perf_counter,
    deadline: float = float("inf"),
) -> SweepPoint:
    """Time run_batch(batch) until two consecutive calls agree within STABLE; their mean is the latency.

    The first call at a new shape may pay for allocations: it then disagrees with the second, and the third
    settles it. On a quiet machine two calls suffice, which is what makes the sweep cheap at large sizes.
    """
    samples: list[float] = []
    started = clock()
    while True:
        t0 = clock()
        run_batch(batch)
        samples.append(clock() - t0)
        if len(samples) >= 2 and abs(samples[-1] - samples[-2]) <= STABLE * min(samples[-2:]):
            return SweepPoint(batch, (samples[-1] + samples[-2]) / 2 * 1000, len(samples))
        now = clock()
        if len(samples) >= _MAX_CALLS or now - started >= _MAX_SECONDS or now > deadline:
            return SweepPoint(batch, statistics.median(samples[1:] or samples) * 1000, len(samples))


def sweep(
    run_batch: Callable[[int], Any],
    budget_seconds: float = DEFAULT_BUDGET_SECONDS,
    max_batch: int = MAX_BATCH,
    clock: Callable[[], float] = time.perf_counter,
) -> list[SweepPoint]:
    """Time run_batch(n) for n = 1, 2, 4, ...; stops at max_batch, past the throughput's knee, or when the
    budget would be overrun."""
    points: list[SweepPoint] = []
    deadline = clock() + budget_seconds
    batch = 1
    while batch <= max_batch:
        started = clock()
        points.append(time_batch(run_batch, batch, clock, deadline))
        if len(points) > 1 and points[-1].throughput < points[-2].throughput * WORTH_DOUBLING:
            break  # the knee: derive() chooses nothing past it, so bigger (slower) sizes are not measured
        # The next size takes roughly twice as long per call: stop if it cannot fit in what is left.
        spent_here = clock() - started
        if clock() + 2 * spent_here > deadline:
            break
        batch *= 2
    return points


def has_variable_length(specs: list[TensorSpecInfo]) -> bool:
    """True when some input has an unknown rank or an unknown dimension besides the batch dimension."""
    return any(spec.shape is None or any(d is None for d in spec.shape[1:]) for spec in specs)


def batchable(specs: list[TensorSpecInfo]) -> str:
    """Why requests to these inputs cannot be batched, or '' when they can."""
    for spec in specs:
        if spec.shape is not None and (not spec.shape or spec.shape[0] is not None):
            return f"input '{spec.name}' has no variable batch dimension ({spec.describe()})"
    return ""


def derive(points: list[SweepPoint], serving_cpus: int, variable_length: bool) -> BatchingConfig:
    chosen = points[0]
    for bigger in points[1:]:
        if bigger.throughput < chosen.throughput * WORTH_DOUBLING:
            break
        chosen = bigger
    threads = max(1, serving_cpus)
    per_batch_seconds = max(chosen.latency_ms / 1000, 1e-6)
    return BatchingConfig(
        max_batch_size=chosen.batch,
        batch_timeout_micros=max(1, round(chosen.latency_ms * 1000)),
        num_batch_threads=threads,
        max_enqueued_batches=max(threads, min(1000, round(QUEUE_SECONDS / per_batch_seconds) * threads)),
        allowed_batch_sizes=[p.batch for p in points if p.batch <= chosen.batch],
        pad_variable_length_inputs=variable_length,
    )


def measure_and_write(
    staged: Path,
    budget_seconds: float = DEFAULT_BUDGET_SECONDS,
    serving_cpus: int = 0,
    signature: str = "serving_default",
    tags: tuple[str, ...] = ("serve",),
    served: ServedModel | None = None,
) -> dict[str, Any]:
    """Sweep the model in `staged` through the serving oracle and write batching_params.pbtxt next to it.

    `served`: the oracle's session over `staged` when the caller has one loaded already (the runtime checks'
    session: loading 500 MB of variables a second time would only repeat the restore). Returns what the
    report shows: the curve, the parameters, or why nothing was written.
    """
    from kfp_tfserving.components.common.samples import generate_inputs
    from kfp_tfserving.components.common.serving_oracle import load_served

    loaded = contextlib.nullcontext(served) if served else load_served(staged, tags=tags, replay_warmup=False)
    with loaded as served:
        info = served.signatures.get(signature)
        if info is None:
            return {"skipped": f"no '{signature}' signature"}
        reason = batchable(info.inputs)
        if reason:
            return {"skipped": f"not batchable: {reason}"}
        feeds: dict[int, Any] = {}

        def run_batch(batch: int) -> None:
            if batch not in feeds:
                feeds.clear()  # one batch's inputs in memory at a time
                feeds[batch] = generate_inputs(info.inputs, batch=batch)
            served.predict(feeds[batch], signature=signature)

        points = sweep(run_batch, budget_seconds)
    cpus = serving_cpus or os.cpu_count() or 1
    config = derive(points, cpus, has_variable_length(info.inputs))
    path = write_batching_params(config, staged)
    chosen = next(p for p in points if p.batch == config.max_batch_size)
    return {
        "file": path.name,
        "points": [{**asdict(p), "throughput": p.throughput} for p in points],
        "parameters": asdict(config),
        "serving_cpus": cpus,
        "throughput_batch_1": points[0].throughput,
        "throughput_chosen": chosen.throughput,
    }
