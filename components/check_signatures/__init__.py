"""Step 3: predict TF Serving's verdict on a SavedModel before anything is published."""
