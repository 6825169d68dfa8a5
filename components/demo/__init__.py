"""Bundled demo data sets, addressed as `demo://NAME/FILE` from any working directory.

The files ship inside the package (and so inside the image), so a pipeline's demo default such
as `demo://bike-sharing/hour.parquet` resolves on a laptop, in a test and in a pod alike.
"""

import pathlib

SCHEME = "demo://"
ROOT = pathlib.Path(__file__).parent


def is_demo(location: str) -> bool:
    """Whether a location names a bundled demo file."""
    return location.startswith(SCHEME)


def resolve(location: str) -> str:
    """Turn `demo://NAME/FILE` into the installed file's path; leave other locations unchanged.

    Args:
        location: a local path, a URI, or a `demo://` location.

    Returns:
        The location to open.

    Raises:
        FileNotFoundError: a `demo://` location that names no bundled file (the message lists them).
    """
    if not is_demo(location):
        return location
    path = ROOT / location.removeprefix(SCHEME)
    if not path.exists():
        known = ", ".join(sorted(SCHEME + str(p.relative_to(ROOT)) for p in files()))
        raise FileNotFoundError(f"no bundled demo file {location}; bundled: {known}")
    return str(path)


def files() -> list[pathlib.Path]:
    """Every bundled data file (data and schemas, not the licence texts)."""
    return [p for p in ROOT.glob("*/*") if p.suffix in {".parquet", ".csv", ".yaml"}]
