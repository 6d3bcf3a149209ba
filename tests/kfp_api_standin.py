"""A small STAND-IN for the KFP v2beta1 REST API, for tests (no cluster, so no real KFP API server here).

It is not KFP. It answers the endpoints kfp.Client calls for `submit`, `schedule`, `submit --wait` and
`runs`, as KFP 2.x answers them, and records every request (method, path, query, body) so that tests can
assert what was sent and what was not.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlparse

import pytest
from loopback_http import LoopbackServer, QuietHandler

API = "/apis/v2beta1"


class FakeKfp:
    """Records requests; answers like KFP 2.x would for the calls kfp.Client makes here."""

    def __init__(self, existing_experiments: dict[str, str] | None = None):
        self.requests: list[dict] = []
        self.experiments = dict(existing_experiments or {})
        self.run_script: list[dict] = []  # what GET /runs/run-42 answers, one per poll; the last one repeats
        self.listed_runs: list[dict] = []  # what GET /runs answers
        self.url = ""  # set once it is served

    def answer(self, method: str, path: str, query: dict, body: dict | None) -> tuple[int, dict]:
        if method == "GET" and path == f"{API}/healthz":
            return 200, {"multi_user": False}
        if method == "GET" and path == f"{API}/experiments":
            wanted = json.loads(query["filter"][0])["predicates"][0]["stringValue"]
            found = [
                {"experiment_id": i, "display_name": n} for n, i in self.experiments.items() if n == wanted
            ]
            return 200, {"experiments": found, "total_size": len(found)} if found else {}
        if method == "POST" and path == f"{API}/experiments":
            new_id = f"exp-{len(self.experiments) + 1}"
            self.experiments[body["display_name"]] = new_id
            return 200, {"experiment_id": new_id, "display_name": body["display_name"]}
        if method == "POST" and path == f"{API}/runs":
            return 200, {"run_id": "run-42", "display_name": body["display_name"], "state": "PENDING"}
        if method == "GET" and path == f"{API}/runs/run-42" and self.run_script:
            return 200, self.run_script.pop(0) if len(self.run_script) > 1 else self.run_script[0]
        if method == "GET" and path == f"{API}/runs":
            return 200, {"runs": self.listed_runs, "total_size": len(self.listed_runs)}
        if method == "POST" and path == f"{API}/recurringruns":
            return 200, {"recurring_run_id": "rr-7", "display_name": body["display_name"]}
        return 404, {"error": f"no route {method} {path}", "code": 5}

    def posted(self, path: str) -> list[dict]:
        """Bodies of the POSTs to `API/<path>`, in order."""
        return [r["body"] for r in self.requests if r["method"] == "POST" and r["path"] == f"{API}/{path}"]


def _handler(fake: FakeKfp) -> type[QuietHandler]:
    class Handler(QuietHandler):
        def _serve(self):
            url = urlparse(self.path)
            body = self.read_json()
            fake.requests.append(
                {"method": self.command, "path": url.path, "query": parse_qs(url.query), "body": body}
            )
            self.send_json(*fake.answer(self.command, url.path, parse_qs(url.query), body))

        do_GET = do_POST = _serve

    return Handler


@pytest.fixture
def kfp_server(monkeypatch, tmp_path):
    """A FakeKfp served on 127.0.0.1 (its URL as `.url`), with the CLI's default experiment already there."""
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.config/kfp/context.json from the developer's machine
    fake = FakeKfp(existing_experiments={"kfp-tfserving": "exp-existing"})
    with LoopbackServer(_handler(fake)) as server:
        fake.url = server.url
        yield fake
