"""Check a freshly published version on a running TF Serving through its documented REST API.

Polls `GET /v1/models/<name>/versions/<v>` until the version is AVAILABLE, then sends a request to
`POST /v1/models/<name>/versions/<v>:predict` and compares the answer with the exported model's own outputs.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import requests

from kfp_tfserving.components.common.errors import PublishError
from kfp_tfserving.components.common.formats.base import Tensors

POLL_SECONDS = 0.5


def _state(url: str, name: str, version: int) -> tuple[str, str, str]:
    """(state, load error, why unknown). A version the server does not list yet is not an error: TF Serving
    finds new versions on its next file-system poll."""
    try:
        response = requests.get(f"{url}/v1/models/{name}/versions/{version}", timeout=10)
    except requests.RequestException as err:
        return "", "", f"cannot reach {url} ({type(err).__name__})"
    if response.status_code != 200:
        return "", "", f"HTTP {response.status_code}"
    for status in response.json().get("model_version_status", []):
        if str(status.get("version")) == str(version):
            error = status.get("status", {})
            message = error.get("error_message", "") if error.get("error_code", "OK") != "OK" else ""
            return status.get("state", ""), message, ""
    return "", "", "version not listed"


def wait_available(url: str, name: str, version: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = "unknown"
    while time.monotonic() < deadline:
        state, error, why = _state(url, name, version)
        if state == "AVAILABLE":
            return
        if error or state == "END":
            raise PublishError(
                f"{url}: model '{name}' version {version} failed to load ({error or state})",
                "see the TF Serving log",
            )
        last = state or why
        time.sleep(POLL_SECONDS)
    raise PublishError(
        f"{url}: model '{name}' version {version} not AVAILABLE after {timeout:.0f}s (last: {last})",
        "check that the server watches this base path, or raise --serving-timeout",
    )


def predict(url: str, name: str, version: int, inputs: Tensors) -> Tensors:
    body = {"signature_name": "serving_default", "inputs": {k: v.tolist() for k, v in inputs.items()}}
    endpoint = f"{url}/v1/models/{name}/versions/{version}:predict"
    try:
        response = requests.post(endpoint, json=body, timeout=60)
    except requests.RequestException as err:
        raise PublishError(f"{endpoint}: request failed ({type(err).__name__})") from None
    if response.status_code != 200:
        detail = response.text.strip().splitlines()[0][:200] if response.text.strip() else ""
        raise PublishError(f"{endpoint}: HTTP {response.status_code} ({detail})", "see the TF Serving log")
    outputs = response.json().get("outputs")
    # The columnar ("inputs") form answers a single output without its name.
    return {k: np.asarray(v) for k, v in outputs.items()} if isinstance(outputs, dict) else outputs


def _matches(got: np.ndarray, want: np.ndarray, atol: float, rtol: float) -> bool:
    if want.dtype.kind not in "fc":
        return got.tolist() == want.tolist()
    return got.shape == want.shape and bool(np.allclose(got, want, atol=atol, rtol=rtol))


def compare(served, expected: Tensors, atol: float, rtol: float) -> list[str]:
    if not isinstance(served, dict):
        if len(expected) != 1:
            return [f"the server answered one unnamed output; the model has {sorted(expected)}"]
        served = {next(iter(expected)): np.asarray(served)}
    problems = []
    for key, want in sorted(expected.items()):
        got = served.get(key)
        if got is None:
            problems.append(f"output '{key}' missing from the answer")
        elif not _matches(got, want, atol, rtol):
            problems.append(f"output '{key}' differs from the exported model's")
    return problems


def verify_live(
    url: str,
    name: str,
    version: int,
    model_dir: Path,
    *,
    timeout: float = 300.0,
    sample: Path | None = None,
    atol: float = 1e-4,
    rtol: float = 1e-4,
    tags: tuple[str, ...] = ("serve",),
) -> None:
    """Wait for the version, send a request, compare with the SavedModel's own answer; PublishError if not."""
    from kfp_tfserving.components.common.formats.string_inputs import described_inputs
    from kfp_tfserving.components.common.samples import generate_inputs, load_sample
    from kfp_tfserving.components.common.saved_model.proto import SERVING_DEFAULT, read_signatures
    from kfp_tfserving.components.common.serving_oracle import load_served

    url = url.rstrip("/")
    signature = read_signatures(model_dir, tags).get(SERVING_DEFAULT)
    if signature is None:
        raise PublishError(f"{model_dir}: no serving_default signature to send a request to")
    specs = described_inputs(
        model_dir, tags=tags
    )  # generated strings must be what the model parses or decodes
    inputs = load_sample(sample, specs) if sample else generate_inputs(specs)
    with load_served(
        model_dir, tags=tags, replay_warmup=False
    ) as served:  # the answer TF Serving should give
        expected = served.predict(inputs)
    wait_available(url, name, version, timeout)
    problems = compare(predict(url, name, version, inputs), expected, atol, rtol)
    if problems:
        raise PublishError(f"{url}: model '{name}' version {version}: {problems[0]}")
