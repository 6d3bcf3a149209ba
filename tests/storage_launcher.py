"""Run a loopback object-store server for the tests: `python storage_launcher.py gcs|s3`.

Prints `PORT <n>` once it listens on 127.0.0.1, then serves until killed. Both servers accept
`POST /_kfp_faults` with JSON {"count": n, "status": 503, "methods": [...]}: the next n matching requests get
that status instead of being served, the way a real store answers under load (tests of retries use it);
`GET /_kfp_faults` returns how many injected faults remain.
"""

from __future__ import annotations

import json
import sys
import threading

_faults = {"count": 0, "status": 503, "methods": []}
_lock = threading.Lock()


def _control(method: str, body: bytes) -> dict:
    with _lock:
        if method == "POST":
            doc = json.loads(body or b"{}")
            _faults.update(
                count=int(doc.get("count", 0)),
                status=int(doc.get("status", 503)),
                methods=[m.upper() for m in doc.get("methods", [])],
            )
        return {"remaining": _faults["count"]}


def _take_fault(method: str) -> int | None:
    """The status to answer with when this request is one of the injected faults."""
    with _lock:
        if _faults["count"] > 0 and (not _faults["methods"] or method in _faults["methods"]):
            _faults["count"] -= 1
            return _faults["status"]
    return None


def _enforce_generation_preconditions() -> None:
    """gcp-storage-emulator ignores ifGenerationMatch, which real GCS enforces with 412 Precondition Failed.

    The publish protocol claims version numbers with `ifGenerationMatch=0` (create only if absent), so the
    tests would prove nothing without it: wrap the emulator's object-writing handlers to check the
    precondition first. This must happen before `gcp_storage_emulator.server` is imported, because its route
    table keeps references to the handler functions. The emulator serves one request at a time, so the check
    and the write cannot interleave with another request.
    """
    from http import HTTPStatus

    from gcp_storage_emulator.exceptions import NotFound
    from gcp_storage_emulator.handlers import objects

    def precondition_failed(request, storage, bucket_param: str, name: str | None) -> bool:
        wanted = request.query.get("ifGenerationMatch")
        if not wanted or name is None:
            return False
        try:
            current = str(storage.get_file_obj(request.params[bucket_param], name).get("generation"))
        except NotFound:
            current = "0"
        return current != wanted[0]

    def guarded(handler, name_of, bucket_param="bucket_name"):
        def wrapper(request, response, storage, *args, **kwargs):
            if precondition_failed(request, storage, bucket_param, name_of(request)):
                response.status = HTTPStatus.PRECONDITION_FAILED
                response.json({"error": {"code": 412, "message": "conditionNotMet"}})
                return None
            return handler(request, response, storage, *args, **kwargs)

        return wrapper

    def upload_name(request):
        if "name" in request.query:
            return request.query["name"][0]
        data = request.data
        if isinstance(data, dict):
            meta = data.get("meta", data)
            return meta.get("name") if isinstance(meta, dict) else None
        return None

    objects.insert = guarded(objects.insert, upload_name)
    objects.copy = guarded(objects.copy, lambda r: r.params["dest_object_id"], "dest_bucket_name")
    objects.rewrite = guarded(objects.rewrite, lambda r: r.params["dest_object_id"], "dest_bucket_name")


def run_gcs() -> None:
    _enforce_generation_preconditions()
    from gcp_storage_emulator import server

    original_handle = server.Router.handle

    def handle(self, method):
        handler = self._request_handler
        if handler.path.startswith("/_kfp_faults"):
            length = int(handler.headers.get("Content-Length") or 0)
            body = json.dumps(_control(method, handler.rfile.read(length))).encode()
            handler.send_response(200)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
            return
        status = _take_fault(method)
        if status is not None:
            handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
            body = json.dumps({"error": {"code": status, "message": "injected fault"}}).encode()
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
            return
        original_handle(self, method)

    server.Router.handle = handle
    emulator = server.create_server("127.0.0.1", 0, in_memory=True)
    emulator.start()
    print(f"PORT {emulator._api._httpd.server_address[1]}", flush=True)
    threading.Event().wait()


def run_s3() -> None:
    from moto.server import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    moto_app = DomainDispatcherApplication(create_backend_app)

    def app(environ, start_response):
        method = environ["REQUEST_METHOD"]
        if environ.get("PATH_INFO", "").startswith("/_kfp_faults"):
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = json.dumps(_control(method, environ["wsgi.input"].read(length))).encode()
            start_response(
                "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
            )
            return [body]
        status = _take_fault(method)
        if status is not None:
            environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            body = (
                b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>ServiceUnavailable</Code>"
                b"<Message>injected fault</Message></Error>"
            )
            headers = [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))]
            start_response(f"{status} Injected", headers)
            return [body]
        return moto_app(environ, start_response)

    # One request at a time: moto's If-None-Match check and its write then cannot interleave.
    httpd = make_server("127.0.0.1", 0, app, threaded=False)
    print(f"PORT {httpd.server_port}", flush=True)
    httpd.serve_forever()


if __name__ == "__main__":
    {"gcs": run_gcs, "s3": run_s3}[sys.argv[1]]()
