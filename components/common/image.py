"""The runtime image every component runs in; its tag is the package version."""

from kfp_tfserving.components import __version__

RUNTIME_IMAGE_REPOSITORY = "kfp-tfserving-runtime"
RUNTIME_IMAGE = f"{RUNTIME_IMAGE_REPOSITORY}:{__version__}"
