"""Step 4: publish a checked SavedModel atomically as <base_path>/<version>/."""
