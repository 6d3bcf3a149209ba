"""Code shared by every step: errors, storage and URIs, model formats, TensorFlow helpers.

Nothing in this package imports kfp, so the logic is testable without it.
"""
