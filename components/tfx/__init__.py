"""TFX components: this project's export → check → publish inside a TFX pipeline (needs TFX, `make tfx`).

`ServingPusher` takes a TFX `Model` artifact (a Trainer's output) and replaces the InfraValidator + Pusher
pair: the serving oracle gives the verdict a model server would, and the version is published under TF
Serving's base path with Pusher's own output (`PushedModel`, `pushed` / `pushed_destination` /
`pushed_version`).
"""

from kfp_tfserving.components.tfx.component import ServingPusher

__all__ = ["ServingPusher"]
