"""One TensorFlow-free view of a SavedModel, as TF Serving reads it.

- `proto`: saved_model.pb read, the meta graph chosen by tag-set, its signatures, variables, assets and
  init op; `tags`: the tag-set type; `tensor_spec`: a signature tensor as the project describes it;
  `tf_protos`: TensorFlow's own generated protos, imported without importing TensorFlow.
- `warmup`: the warmup file format; `edit`: proto edits that make a SavedModel servable; `repair`: the
  re-save that mends a TF2 SavedModel TF Serving cannot restore.
- `fingerprint` (with `graph_fingerprint`): one hash of what TF Serving runs.

Only `warmup`, `repair` and `fingerprint`'s checkpoint read import TensorFlow, and only when called.
"""
