"""Pipelines built from the kfp-tfserving components, their compiler, local runner and CLI."""
