"""kfp-tfserving components: load, export, check and push a TensorFlow model for TF Serving."""

__version__ = "0.1.0"
