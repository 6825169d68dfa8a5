"""Model references: which model a step loads, and which registered version it is.

The one type that every layer passes around (finders return it, jobs record it, lineage names
it), kept apart so that none of them imports another's module for it.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class ModelRef:
    """A resolved model: where to load it from, and which registered version it is."""

    uri: str
    name: str | None = None
    version: int | None = None
    run_id: str | None = None

    def describe(self) -> str:
        """A short human label, e.g. `bike-sharing v3`."""
        if self.name and self.version:
            return f"{self.name} v{self.version}"
        return self.uri
