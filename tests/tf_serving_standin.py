"""A small STAND-IN for TF Serving's REST API, for tests on machines without `tensorflow_model_server`.

It is not TF Serving. It implements just the documented endpoints the push step talks to, with TF Serving's
default behaviour where it matters: it polls a local model base path, serves the newest numeric version
(version policy `latest 1`), loads it before unloading the previous one, and ignores directories whose names
are not integers. Versions are loaded and answered by the project's serving oracle, as the model server
does it: a TF1 Session over the {serve} graph, the saver_def restore, the init op, the warmup replay (a bad
record fails the version), Session.run on the signature_def's tensor names.

    GET  /v1/models/<name>[/versions/<v>]             -> {"model_version_status": [...]}
    POST /v1/models/<name>[/versions/<v>]:predict     -> {"outputs": ...} or {"predictions": [...]}
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

from loopback_http import LoopbackServer, QuietHandler

_ROUTE = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+))?(?P<predict>:predict)?$")


class StandInTFServing:
    def __init__(self, name: str, base_path: Path, poll_seconds: float = 0.2):
        self.name = name
        self.base_path = Path(base_path)
        self.poll_seconds = poll_seconds
        self.loaded: dict[int, object] = {}
        self.failed: dict[int, str] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server = LoopbackServer(self._handler_class())
        self.url = self._server.url
        self._poller = threading.Thread(target=self._poll_loop, daemon=True)

    def __enter__(self) -> StandInTFServing:
        self._server.start()
        self._poller.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._server.stop()
        self._poller.join(timeout=10)

    # -- the file-system source: what TF Serving's FileSystemStoragePathSource does, in miniature
    def _present(self) -> list[int]:
        if not self.base_path.is_dir():
            return []
        return sorted(int(p.name) for p in self.base_path.iterdir() if p.name.isdigit() and p.is_dir())

    def _poll_once(self) -> None:
        from kfp_tfserving.components.common.serving_oracle import ServedModel

        present = self._present()
        aspired = present[-1:]
        for version in aspired:
            if version in self.loaded or version in self.failed:
                continue
            try:
                model = ServedModel(self.base_path / str(version))
                try:
                    model.replay_warmup()
                except Exception:
                    model.close()
                    raise
                with self._lock:
                    self.loaded[version] = model
            except Exception as err:  # TF Serving reports the load error in the version's status
                with self._lock:
                    self.failed[version] = f"{type(err).__name__}: {err}".splitlines()[0]
        with self._lock:
            serving = [v for v in self.loaded if v in aspired]
            for version in list(self.loaded):
                # Availability-preserving: unload the old version only once an aspired one serves.
                if version not in aspired and (serving or version not in present):
                    self.loaded.pop(version).close()
            for version in list(self.failed):
                if version not in present:
                    del self.failed[version]

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            self._poll_once()
            self._stop.wait(self.poll_seconds)

    # -- REST
    def statuses(self, version: int | None) -> list[dict]:
        with self._lock:
            out = [
                {"version": str(v), "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
                for v in sorted(self.loaded)
            ]
            out += [
                {"version": str(v), "state": "END", "status": {"error_code": "UNKNOWN", "error_message": m}}
                for v, m in sorted(self.failed.items())
            ]
        return [s for s in out if version is None or s["version"] == str(version)]

    def predict(self, version: int | None, body: dict) -> tuple[int, dict]:
        from kfp_tfserving.components.common.tf_serving_json import decode_request, response_json_value

        with self._lock:
            if not self.loaded:
                return 404, {"error": f"Servable not found for request: Latest({self.name})"}
            chosen = max(self.loaded) if version is None else version
            model = self.loaded.get(chosen)
        if model is None:
            return 404, {"error": f"Servable not found for request: Specific({self.name}, {version})"}
        signature = body.get("signature_name", "serving_default")
        dtypes = {s.name: s.dtype for s in model.signatures[signature].inputs}
        inputs = decode_request(body, dtypes)
        answer = model.predict(inputs, signature)
        result = {k: response_json_value(k, v) for k, v in answer.items()}
        if "inputs" in body:
            return 200, {"outputs": next(iter(result.values())) if len(result) == 1 else result}
        names = sorted(result)
        count = len(result[names[0]])
        rows = [{k: result[k][i] for k in names} for i in range(count)]
        return 200, {"predictions": [next(iter(r.values())) for r in rows] if len(names) == 1 else rows}

    def _handler_class(self):
        server = self

        class Handler(QuietHandler):
            def _route(self):
                match = _ROUTE.match(self.path)
                if not match or match["name"] != server.name:
                    return None
                return match["version"] and int(match["version"]), bool(match["predict"])

            def do_GET(self) -> None:
                route = self._route()
                if route is None or route[1]:
                    self.send_json(404, {"error": f"Could not find any versions of model {self.path}"})
                    return
                statuses = server.statuses(route[0])
                if not statuses:
                    self.send_json(
                        404, {"error": f"Could not find version {route[0]} of model {server.name}"}
                    )
                    return
                self.send_json(200, {"model_version_status": statuses})

            def do_POST(self) -> None:
                route = self._route()
                body = self.read_json() or {}
                if route is None or not route[1]:
                    self.send_json(404, {"error": "not found"})
                    return
                try:
                    status, doc = server.predict(route[0], body)
                except Exception as err:
                    status, doc = 400, {"error": f"{type(err).__name__}: {err}".splitlines()[0]}
                self.send_json(status, doc)

        return Handler
