"""The container image every component runs in: a compile-time setting.

Set LIFECYCLE_IMAGE before the components are imported (`python -m pipelines compile --image`)
to compile for another registry. The image already holds this package and kfp, so components
install nothing when their pod starts.
"""

import os

DEFAULT_IMAGE = "kfp-model-lifecycle:0.1.0"
IMAGE = os.environ.get("LIFECYCLE_IMAGE", DEFAULT_IMAGE)
