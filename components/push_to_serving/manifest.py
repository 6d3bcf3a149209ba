"""The manifest written into every published version: files, sizes, sha256, where it came from."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MANIFEST_NAME = "kfp_tfserving_manifest.json"
_CHUNK = 4 * 1024 * 1024


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class Manifest:
    files: dict[str, dict[str, Any]]  # relative path -> {"size": int, "sha256": str}
    source: dict[
        str, Any
    ]  # where the model came from and what it is: source_uri, source_format, model_fingerprint
    published_at: float = 0.0  # unix seconds; not part of the content digest

    @property
    def model_fingerprint(self) -> str:
        """The canonical hash of what TF Serving runs (common/model_fingerprint.py); "" in older manifests."""
        return self.source.get("model_fingerprint", "")

    @property
    def content_digest(self) -> str:
        """One digest of every file's path and hash: equal digests mean identical model content."""
        lines = "".join(f"{p}\0{meta['sha256']}\n" for p, meta in sorted(self.files.items()))
        return hashlib.sha256(lines.encode()).hexdigest()

    def to_json(self) -> str:
        return json.dumps(
            {
                "content_digest": self.content_digest,
                "files": self.files,
                "source": self.source,
                "published_at": self.published_at,
            },
            indent=2,
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        doc = json.loads(text)
        return cls(
            files=doc["files"], source=doc.get("source", {}), published_at=float(doc.get("published_at", 0))
        )


def build_manifest(model_dir: Path, source: dict[str, Any]) -> Manifest:
    files = {}
    for dirpath, _, names in os.walk(model_dir):
        for name in names:
            full = Path(dirpath, name)
            rel = full.relative_to(model_dir).as_posix()
            if rel != MANIFEST_NAME:
                files[rel] = {"size": full.stat().st_size, "sha256": sha256_file(full)}
    return Manifest(files, source)


def verify_manifest(model_dir: Path, manifest: Manifest) -> list[str]:
    """Problems found comparing the directory with the manifest; empty when it matches."""
    problems = []
    on_disk = build_manifest(model_dir, manifest.source).files
    for rel, meta in sorted(manifest.files.items()):
        got = on_disk.get(rel)
        if got is None:
            problems.append(f"{rel}: missing")
        elif got != meta:
            problems.append(f"{rel}: size or sha256 differs")
    problems += [f"{rel}: not in the manifest" for rel in sorted(set(on_disk) - set(manifest.files))]
    return problems
