"""The manifest written into every published version: files, sizes, checksums, where it came from.

Each file's checksum is its CRC32C, base64 of the big-endian value: the checksum Cloud Storage keeps for
every object (`gsutil hash -c` prints the same string), that S3 offers, and that TensorFlow's own checkpoint
index records per tensor. It is there to prove a copy complete and uncorrupted, and a hardware CRC32C of a
gigabyte takes a tenth of a second where sha256 took most of a publish's time. It is no signature: anyone who
can change the files can change the manifest next to them, with either checksum. Manifests written before
carry sha256 per file and are still read and verified with it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import google_crc32c

MANIFEST_NAME = "kfp_tfserving_manifest.json"
CHECKSUM = "crc32c"
_CHUNK = 8 * 1024 * 1024


class Crc32c:
    """Running CRC32C, encoded as Cloud Storage encodes it."""

    def __init__(self) -> None:
        self._value = 0

    def update(self, data: bytes) -> None:
        self._value = google_crc32c.extend(self._value, data)

    def encoded(self) -> str:
        return base64.b64encode(self._value.to_bytes(4, "big")).decode("ascii")


def _digest_file(path: Path, algorithm: str) -> str:
    digest = Crc32c() if algorithm == CHECKSUM else hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.encoded() if algorithm == CHECKSUM else digest.hexdigest()


def _algorithm(meta: dict[str, Any]) -> str:
    return CHECKSUM if CHECKSUM in meta else "sha256"


@dataclass
class Manifest:
    files: dict[str, dict[str, Any]]  # relative path -> {"size": int, "crc32c": str} (older: "sha256")
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
        """One digest of every file's path and checksum: equal digests mean identical model content.

        sha256 entries keep the lines they always had, so an older manifest's digest does not change."""

        def line(path: str, meta: dict[str, Any]) -> str:
            if CHECKSUM in meta:
                return f"{path}\0{CHECKSUM}:{meta[CHECKSUM]}\n"
            return f"{path}\0{meta['sha256']}\n"

        lines = "".join(line(p, meta) for p, meta in sorted(self.files.items()))
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


def _model_files(model_dir: Path) -> dict[str, Path]:
    found = {}
    for dirpath, _, names in os.walk(model_dir):
        for name in names:
            full = Path(dirpath, name)
            rel = full.relative_to(model_dir).as_posix()
            if rel != MANIFEST_NAME:
                found[rel] = full
    return found


def build_manifest(model_dir: Path, source: dict[str, Any]) -> Manifest:
    files = {
        rel: {"size": full.stat().st_size, CHECKSUM: _digest_file(full, CHECKSUM)}
        for rel, full in _model_files(model_dir).items()
    }
    return Manifest(files, source)


def verify_manifest(model_dir: Path, manifest: Manifest) -> list[str]:
    """Problems found comparing the directory with the manifest; empty when it matches."""
    problems = []
    on_disk = _model_files(model_dir)
    for rel, meta in sorted(manifest.files.items()):
        full = on_disk.get(rel)
        algorithm = _algorithm(meta)
        if full is None:
            problems.append(f"{rel}: missing")
        elif full.stat().st_size != meta["size"] or _digest_file(full, algorithm) != meta[algorithm]:
            problems.append(f"{rel}: size or {algorithm} differs")
    problems += [f"{rel}: not in the manifest" for rel in sorted(set(on_disk) - set(manifest.files))]
    return problems
