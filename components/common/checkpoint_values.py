"""A checkpoint's values, read one tensor at a time by TensorFlow's own reader, without its Python runtime.

The keys and dtypes come from TensorFlow's BundleReader (its standalone checkpoint-reader binding, the one
tf.train.load_checkpoint wraps); the values from the RestoreV2 kernel a model server's saver runs, in a
two-op graph through the C API. The binding's own get_tensor cannot be used here: it converts to numpy
through TensorFlow's Python runtime, which this process does not import.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from kfp_tfserving.components.common import tf_c_api
from kfp_tfserving.components.common.saved_model.tf_protos import tf_proto_module
from kfp_tfserving.components.common.tfenv import quiet_environment


def checkpoint_dtypes(prefix: Path) -> dict[str, int]:
    """Checkpoint key -> DataType enum, from the bundle's index."""
    quiet_environment()
    pywrap = tf_proto_module("tensorflow.python.util._pywrap_checkpoint_reader")
    return dict(pywrap.CheckpointReader(str(prefix))._GetVariableToDataTypeMap())


def checkpoint_values(prefix: Path, keys: list[str], dtypes: dict[str, int]) -> Iterator[tuple[str, object]]:
    """(key, value) for each key in order, one tensor in memory at a time. A scalar string is `bytes` and
    a numeric scalar a 0-d array, as TensorFlow's checkpoint reader returns them."""
    attr = tf_proto_module("tensorflow.core.framework.attr_value_pb2").AttrValue
    string = attr(type=tf_c_api.DT_STRING).SerializeToString()
    with tf_c_api.GraphSession() as graph:
        feeds = [
            tf_c_api.Output(graph.add_node("Placeholder", name, [], {"dtype": string}), 0)
            for name in ("prefix", "tensor_names", "shape_and_slices")
        ]
        runners = {}
        for dtype in sorted({dtypes[key] for key in keys}):
            restore = graph.add_node(
                "RestoreV2",
                f"restore_{dtype}",
                feeds,
                {"dtypes": attr(list={"type": [dtype]}).SerializeToString()},
            )
            runners[dtype] = graph.runner(feeds, [tf_c_api.Output(restore, 0)])
        where = np.array(str(prefix).encode(), dtype=object)
        whole = np.array([b""], dtype=object)
        for key in keys:
            (value,) = runners[dtypes[key]].run([where, np.array([key.encode()], dtype=object), whole])
            yield key, value.item() if value.dtype.kind == "O" and value.ndim == 0 else value
