"""Step 1: fetch a model from a path or URI and detect its format."""
