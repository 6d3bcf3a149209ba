"""Optional step after the push: serve the published version through a KServe InferenceService."""
