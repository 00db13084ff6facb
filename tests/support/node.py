"""Node packages a test runs, pinned by a package-lock.json in the test's folder.

node_packages(folder, probe) -> None   `npm ci` in `folder` once, when `probe` (a path under
                                        node_modules) is missing; fails (never skips) without
                                        node or npm, because CI must run those tests.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def node_packages(folder: Path, probe: str) -> None:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail(f"node and npm are required for {folder.name} (Node 20 + npm)")
    if (folder / "node_modules" / probe).exists():
        return
    # --ignore-scripts: no package's install script runs (one of the parser's would send telemetry).
    result = subprocess.run(
        [npm, "ci", "--prefix", str(folder), "--no-audit", "--no-fund", "--ignore-scripts"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        pytest.fail(f"npm ci --prefix {folder} failed:\n{result.stderr[-2000:]}")
