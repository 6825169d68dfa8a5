"""Audit the locked dependency set (requirements-dev.lock) for known vulnerabilities.

pip-audit asks PyPI's vulnerability data about each pinned version (no install, no pip). Any
known vulnerability fails the audit, with its id and the versions that fix it. A machine that
reaches a package index but not the vulnerability data (a mirror that serves files only) gets
every package back as "could not be audited": that is said plainly, and fails only with
AUDIT_STRICT=1, since it is the network that failed, not the code.

usage: python .ci/audit.py
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements-dev.lock"


def main() -> int:
    """Run pip-audit on the lock and say what it found; return the exit status."""
    with tempfile.TemporaryDirectory() as tmp:
        report = pathlib.Path(tmp) / "audit.json"
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip_audit",
                "--disable-pip",
                "--require-hashes",
                "-r",
                str(LOCK),
                "-f",
                "json",
                "-o",
                str(report),
            ],
            capture_output=True,
            text=True,
            timeout=900,
        )
        if not report.exists():
            print(f"pip-audit failed to run:\n{done.stdout}{done.stderr}", file=sys.stderr)
            return 1
        dependencies = json.loads(report.read_text())["dependencies"]
    code, lines = verdict(dependencies, strict=os.environ.get("AUDIT_STRICT") == "1")
    print("\n".join(lines))
    return code


def verdict(dependencies: list[dict], strict: bool = False) -> tuple[int, list[str]]:
    """The exit status and the lines to print, from pip-audit's JSON `dependencies`."""
    vulnerable = [dep for dep in dependencies if dep.get("vulns")]
    skipped = [dep for dep in dependencies if "skip_reason" in dep]
    audited = len(dependencies) - len(skipped)
    lines = []
    for dep in vulnerable:
        for vuln in dep["vulns"]:
            fixes = ", ".join(vuln.get("fix_versions") or []) or "no fixed release yet"
            lines.append(f"{dep['name']}=={dep['version']}: {vuln['id']} (fixed in: {fixes})")
    if vulnerable:
        lines.append(
            f"audit: {len(vulnerable)} of {len(dependencies)} locked packages have known "
            "vulnerabilities: raise their floor in pyproject.toml, then `make lock`"
        )
        return 1, lines
    if audited == 0:
        reason = skipped[0]["skip_reason"] if skipped else "the lock is empty"
        lines.append(
            f"audit: none of the {len(dependencies)} locked packages could be audited: the "
            f"vulnerability data is out of reach from this machine (first reason: {reason})"
        )
        return (1 if strict else 0), lines
    unaudited = f" ({len(skipped)} could not be audited)" if skipped else ""
    lines.append(f"audit: no known vulnerabilities in {audited} locked packages{unaudited}")
    return 0, lines


if __name__ == "__main__":
    sys.exit(main())
