"""How much a model may expand to when it is unpacked or copied: one limit for archives and trees.

Kept apart from archives.py so that the code that only walks trees (the push) does not import tarfile,
zipfile and gzip.
"""

from __future__ import annotations

import os

from kfp_tfserving.components.common.errors import StorageError

MAX_BYTES_ENV = "KFP_TFSERVING_MAX_EXTRACT_BYTES"
DEFAULT_MAX_BYTES = 20 * 1024**3


def max_extract_bytes(override: int | None = None) -> int:
    """The expansion limit: the argument, else $KFP_TFSERVING_MAX_EXTRACT_BYTES, else 20 GiB."""
    if override:
        return int(override)
    raw = os.environ.get(MAX_BYTES_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_BYTES
    try:
        value = int(raw)
    except ValueError:
        raise StorageError(
            f"${MAX_BYTES_ENV}={raw!r} is not a number of bytes", "set it to an integer"
        ) from None
    return value if value > 0 else DEFAULT_MAX_BYTES
