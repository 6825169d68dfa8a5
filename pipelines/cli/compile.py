"""`compile`: every pipeline to `pipelines/compiled/` and its Kubernetes-native manifests."""

from __future__ import annotations

import argparse
import os
import pathlib

from pipelines.cluster.compilation import MANIFESTS, compile_all
from pipelines.dags.catalog import COMPILED


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`compile [--no-gpu] [--image IMAGE] [--out DIR] [--no-manifests]`."""
    parser.add_argument("--no-gpu", action="store_true", help="no GPU scheduling (kind, CPU)")
    parser.add_argument("--image", help="component image (default: LIFECYCLE_IMAGE or built-in)")
    parser.add_argument("--out", type=pathlib.Path, default=COMPILED, help="output folder")
    parser.add_argument(
        "--no-manifests", action="store_true", help="skip the Kubernetes-native manifests"
    )
    parser.set_defaults(handler=compile_command)


def compile_command(args: argparse.Namespace) -> int:
    """Compile every pipeline (and its manifests) and print the files written."""
    if args.image:
        os.environ["LIFECYCLE_IMAGE"] = args.image
    manifests = None if args.no_manifests or args.out != COMPILED else MANIFESTS
    for path in compile_all(args.out, manifests, gpu=not args.no_gpu):
        print(f"wrote {path}")
    return 0
