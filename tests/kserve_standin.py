"""A small STAND-IN for the Kubernetes API's InferenceService endpoints, for tests (no cluster here).

It is not Kubernetes nor KServe. It answers the namespaced custom-object calls the deploy_kserve step makes
for `serving.kserve.io/v1beta1` `inferenceservices`, records every request, and plays KServe's controller
in the simplest way: some GETs after a create or patch, the object's status says Ready for its new
generation, with `status.address.url` = `serving_url` (a TF Serving, or its stand-in, the test runs).

    GET   /apis/serving.kserve.io/v1beta1/namespaces/<ns>/inferenceservices/<name>
    POST  /apis/serving.kserve.io/v1beta1/namespaces/<ns>/inferenceservices
    PATCH /apis/serving.kserve.io/v1beta1/namespaces/<ns>/inferenceservices/<name>   (merge patch)
"""

from __future__ import annotations

import copy
import re
import threading

from loopback_http import LoopbackServer, QuietHandler

_ROUTE = re.compile(
    r"^/apis/serving\.kserve\.io/v1beta1/namespaces/(?P<ns>[^/]+)/inferenceservices(?:/(?P<name>[^/]+))?$"
)


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _status(code: int, reason: str, message: str) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason,
            "message": message}  # fmt: skip


class StandInKubernetes:
    def __init__(self, serving_url: str = "", ready_after_gets: int = 1):
        self.serving_url = serving_url
        self.ready_after_gets = ready_after_gets  # -1: never Ready
        self.objects: dict[tuple[str, str], dict] = {}
        self.requests: list[dict] = []
        self.refuse: dict[str, int] = {}  # method -> HTTP status to answer instead (403, 404, ...)
        self._gets_since_change = 0
        self._lock = threading.Lock()
        self._server = LoopbackServer(self._handler_class())
        self.url = self._server.url

    def __enter__(self) -> StandInKubernetes:
        self._server.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.stop()

    def methods(self) -> list[str]:
        return [r["method"] for r in self.requests]

    def _observe(self, obj: dict) -> None:
        """The controller's part: Ready for the current generation once enough GETs have passed."""
        generation = obj["metadata"]["generation"]
        if self.ready_after_gets < 0 or self._gets_since_change < self.ready_after_gets:
            obj["status"] = {
                "observedGeneration": generation - 1,
                "conditions": [{"type": "Ready", "status": "False", "reason": "RevisionMissing",
                                "message": "Revision is not ready yet"}],
            }  # fmt: skip
            return
        obj["status"] = {
            "observedGeneration": generation,
            "conditions": [{"type": "Ready", "status": "True"}],
            "address": {"url": self.serving_url},
            "url": "http://external.example.invalid",
        }

    def answer(self, method: str, path: str, content_type: str, body) -> tuple[int, dict]:
        route = _ROUTE.match(path)
        if not route:
            return 404, _status(404, "NotFound", f"the server could not find the requested resource {path}")
        if method in self.refuse:
            code = self.refuse[method]
            return code, _status(code, "Forbidden" if code == 403 else "NotFound", "refused by the test")
        ns, name = route.group("ns"), route.group("name")
        with self._lock:
            if method == "GET" and name:
                obj = self.objects.get((ns, name))
                if obj is None:
                    return 404, _status(404, "NotFound", f'inferenceservices "{name}" not found')
                self._gets_since_change += 1
                self._observe(obj)
                return 200, obj
            if method == "POST" and not name:
                key = (ns, body["metadata"]["name"])
                if key in self.objects:
                    return 409, _status(409, "AlreadyExists", "already exists")
                obj = copy.deepcopy(body)
                obj["metadata"].update({"namespace": ns, "generation": 1})
                self.objects[key] = obj
                self._gets_since_change = 0
                return 201, obj
            if method == "PATCH" and name:
                if content_type != "application/merge-patch+json":
                    return 415, _status(415, "UnsupportedMediaType", content_type)
                obj = self.objects.get((ns, name))
                if obj is None:
                    return 404, _status(404, "NotFound", f'inferenceservices "{name}" not found')
                patched = merge_patch(obj, body)
                if patched.get("spec") != obj.get("spec"):
                    patched["metadata"]["generation"] += 1
                    self._gets_since_change = 0
                self.objects[(ns, name)] = patched
                return 200, patched
        return 405, _status(405, "MethodNotAllowed", method)

    def _handler_class(self):
        standin = self

        class Handler(QuietHandler):
            def _serve(self) -> None:
                body = self.read_json()
                content_type = (self.headers.get("Content-Type") or "").split(";")[0]
                standin.requests.append(
                    {"method": self.command, "path": self.path, "content_type": content_type, "body": body}
                )
                self.send_json(*standin.answer(self.command, self.path, content_type, body))

            do_GET = do_POST = do_PATCH = _serve

        return Handler
