"""A Keras 3 load without the random draws it throws away.

`keras.saving.load_model` builds every layer from its config, which fills each variable from its
initializer, then overwrites the variables with the saved weights. For a large model the draw costs as
much as the read: a 500 MB model of Dense layers spent 1.5 s of its 3 s load on Glorot numbers that were
never used. Within `initial_values_deferred()`, a variable starts as zeros (a fill, not a draw) and
remembers its initializer. When the load is over, a variable nothing wrote (not assigned through Keras,
and still all zeros: a variable a layer does not save, a seed state) gets its initializer's value, so the
model is the one Keras's own load returns; tests/common/formats/test_keras_load_init.py compares the two.
Parity proves the export against this model, not against the file. The one case this cannot tell apart:
a layer writing all-zero saved values past Keras's assign gets its initializer's values instead.

It changes two private Keras methods for the length of the load. Where they are not what this module
expects (another Keras release or backend), it changes nothing and the load is Keras's own.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

_LOCK = threading.Lock()  # one load at a time changes the class methods


def _variable_classes() -> tuple[Any, Any] | None:
    """(the TensorFlow backend's Variable, Keras's common Variable), or None when they are not the
    methods this module replaces."""
    try:
        from keras.src.backend.common.variables import Variable as KerasVariable
        from keras.src.backend.tensorflow.core import Variable
    except ImportError:
        return None
    if not all(
        callable(getattr(cls, name, None))
        for cls, name in ((Variable, "_initialize_with_initializer"), (KerasVariable, "assign"))
    ):
        return None
    return Variable, KerasVariable


@contextlib.contextmanager
def initial_values_deferred() -> Iterator[None]:
    """Variables created inside start as zeros; on a clean exit, those nothing assigned get their
    initializer's value."""
    classes = _variable_classes()
    if classes is None:
        yield
        return
    import keras
    import numpy as np

    variable_class, keras_variable_class = classes
    zeros = keras.initializers.Zeros()
    pending: dict[int, tuple[Any, Any]] = {}
    draw, assign = variable_class._initialize_with_initializer, keras_variable_class.assign

    def zero_filled(self: Any, initializer: Any) -> None:
        draw(self, zeros)
        pending[id(self)] = (self, initializer)

    def assigned(self: Any, value: Any) -> Any:
        pending.pop(id(self), None)
        return assign(self, value)

    with _LOCK:
        variable_class._initialize_with_initializer = zero_filled
        keras_variable_class.assign = assigned
        try:
            yield
        finally:
            variable_class._initialize_with_initializer = draw
            keras_variable_class.assign = assign
        for variable, initializer in pending.values():
            # Still all zeros: nothing wrote it, not even a layer writing its tf.Variable directly
            # (`v.value.assign`) past Keras's assign, whose values must stay.
            if not np.any(variable.numpy()):
                variable.assign(initializer(variable.shape, dtype=variable.dtype))
