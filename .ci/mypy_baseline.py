"""mypy --strict on components/ and pipelines/, held against a baseline that only shrinks.

The code predates strict typing: `.ci/mypy-baseline.txt` lists the errors it still has, one
`count<TAB>path<TAB>[code] message` per kind of error in a file (line numbers left out, so that
an edit above an old error does not make it new). `check` fails on any error beyond the
baseline, and on baseline entries that no longer occur (shrink it: `make typecheck-baseline`);
`update` rewrites the baseline and refuses to let it grow unless told (`--allow-growth`).

usage: python .ci/mypy_baseline.py check|update [--allow-growth]
"""

from __future__ import annotations

import collections
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
BASELINE = ROOT / ".ci" / "mypy-baseline.txt"
# `path:line: error: message  [code]` (mypy's default, one line per error with --no-pretty).
ERROR = re.compile(
    r"^(?P<path>[^:]+):\d+(?::\d+)?: error: (?P<message>.*?)\s+\[(?P<code>[a-z-]+)\]$"
)

Key = tuple[str, str]


def run_mypy() -> collections.Counter[Key]:
    """The errors of mypy (configured in pyproject.toml), counted by file and message."""
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-pretty", "--no-error-summary", "--show-error-codes"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if done.returncode not in (0, 1):  # 2: mypy itself failed (bad config, crash)
        sys.exit(f"mypy failed to run:\n{done.stdout}{done.stderr}")
    found: collections.Counter[Key] = collections.Counter()
    for line in done.stdout.splitlines():
        match = ERROR.match(line.strip())
        if match:
            message = re.sub(r"\bline \d+\b", "line N", match["message"])
            found[(match["path"], f"[{match['code']}] {message}")] += 1
    return found


def read_baseline() -> collections.Counter[Key]:
    """The baseline's counts ({} when there is none yet)."""
    counts: collections.Counter[Key] = collections.Counter()
    if BASELINE.exists():
        for line in BASELINE.read_text().splitlines():
            if line and not line.startswith("#"):
                count, path, message = line.split("\t", 2)
                counts[(path, message)] = int(count)
    return counts


def write_baseline(counts: collections.Counter[Key]) -> None:
    """Write the baseline sorted by file, so that its diffs read as a list of fixes."""
    lines = [
        "# mypy --strict errors the code still has (.ci/mypy_baseline.py); only ever shrink it.",
        *(f"{n}\t{path}\t{message}" for (path, message), n in sorted(counts.items())),
    ]
    BASELINE.write_text("\n".join(lines) + "\n")


def main(argv: list[str]) -> int:
    """Check the code against the baseline, or update the baseline; return the exit status."""
    if not argv or argv[0] not in ("check", "update"):
        print(__doc__, file=sys.stderr)
        return 2
    found, baseline = run_mypy(), read_baseline()
    new = found - baseline
    gone = baseline - found
    if argv[0] == "update":
        if new and baseline and "--allow-growth" not in argv:
            for (path, message), n in sorted(new.items()):
                print(f"new: {path}: {message} (x{n})", file=sys.stderr)
            print("the baseline only shrinks: fix these, or pass --allow-growth", file=sys.stderr)
            return 1
        write_baseline(found)
        files = len({path for path, _ in found})
        print(f"{BASELINE.relative_to(ROOT)}: {sum(found.values())} errors in {files} files")
        return 0
    for (path, message), n in sorted(new.items()):
        print(f"{path}: error: {message} (x{n}, not in the baseline)")
    if gone:
        print(
            f"{sum(gone.values())} baseline errors no longer occur: shrink the baseline "
            "with `make typecheck-baseline` and commit it"
        )
    total = sum(found.values())
    if new or gone:
        return 1
    print(f"mypy --strict: {total} known errors (baseline), none new")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
