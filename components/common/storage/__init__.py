"""One storage interface for local paths (including a mounted PVC), gs:// and s3://, used by load and push."""

from kfp_tfserving.components.common.storage.base import Storage, join_uri, split_scheme
from kfp_tfserving.components.common.storage.registry import storage_for

__all__ = ["Storage", "join_uri", "split_scheme", "storage_for"]
