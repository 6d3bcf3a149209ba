"""Pick the storage backend for a URI by its scheme."""

from __future__ import annotations

import importlib

from kfp_tfserving.components.common.errors import StorageError
from kfp_tfserving.components.common.storage.base import Storage, split_scheme

# Imported lazily: a local run never pays for the cloud clients' import time.
_BACKENDS = {
    "file": "kfp_tfserving.components.common.storage.local:LocalStorage",
    "gs": "kfp_tfserving.components.common.storage.gcs:GCSStorage",
    "s3": "kfp_tfserving.components.common.storage.s3:S3Storage",
    "http": "kfp_tfserving.components.common.storage.http:HttpStorage",
    "https": "kfp_tfserving.components.common.storage.http:HttpStorage",
}


def storage_for(uri: str) -> Storage:
    scheme, _ = split_scheme(uri)
    target = _BACKENDS.get(scheme)
    if target is None:
        known = ", ".join(f"{s}://" for s in sorted(_BACKENDS) if s != "file")
        raise StorageError(
            f"{uri}: unsupported URI scheme '{scheme}://'", f"use a local path or one of {known}"
        )
    module_name, class_name = target.split(":")
    return getattr(importlib.import_module(module_name), class_name)()
