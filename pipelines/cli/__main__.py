"""`python -m kfp_tfserving.pipelines.cli` is the kfp-tfserving command."""

from kfp_tfserving.pipelines.cli import main

main()
