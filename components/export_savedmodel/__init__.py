"""Step 2: export the source model as a SavedModel TF Serving loads, with proven numeric parity."""
