"""`make audit`: known vulnerabilities in the pinned versions (constraints.txt), by pip-audit.

pip-audit says "No known vulnerabilities found" even when it could look none of the packages up (no route
to PyPI's JSON API, or a mirror that lacks it); this says how many were checked, and plainly when none was.
Exit 1 when a pinned version has a known vulnerability, else 0.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

LOCK = Path(__file__).resolve().parent.parent / "constraints.txt"


def main() -> int:
    run = subprocess.run([sys.executable, "-m", "pip_audit", "--requirement", str(LOCK), "--no-deps", "--disable-pip",
                          "--progress-spinner", "off", "--format", "json"], capture_output=True, text=True)
    try:
        found = json.loads(run.stdout)["dependencies"]
    except (json.JSONDecodeError, KeyError):
        last = (run.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"audit: pip-audit could not run ({last}); nothing was checked")
        return 0 if "connect" in last.lower() or "resolve" in last.lower() else 1
    checked = [d for d in found if "skip_reason" not in d]
    if not checked:
        print(f"audit: no vulnerability database reachable from this machine (PyPI's JSON API); none of the "
              f"{len(found)} pinned packages was checked")
        return 0
    vulnerable = [d for d in checked if d.get("vulns")]
    for dependency in vulnerable:
        ids = ", ".join(v["id"] + (f" (fixed in {', '.join(v['fix_versions'])})" if v.get("fix_versions") else "")
                        for v in dependency["vulns"])
        print(f"audit: {dependency['name']} {dependency['version']}: {ids}")
    print(f"audit: checked {len(checked)} of {len(found)} pinned packages; "
          f"{len(vulnerable)} with known vulnerabilities")
    return 1 if vulnerable else 0


if __name__ == "__main__":
    sys.exit(main())
