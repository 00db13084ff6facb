"""The layers of docs/architecture.md are contracts the build checks (pyproject.toml
`[tool.importlinter]`, run by `make lint` as `lint-imports`): a module that imports across
a layer, a product module that imports the development tooling, or an import cycle fails.

These tests run the same contracts, so `pytest` alone also catches a drift, and show that
they can fail: a copy of the package with one forbidden import is refused.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(package_parent: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` with the project's contracts on the `worker` package found in
    `package_parent` (first on the path, ahead of the editable install)."""
    command = [str(LINT_IMPORTS), "--config", str(ROOT / "pyproject.toml"), "--no-cache"]
    env = {**os.environ, "PYTHONPATH": str(package_parent)}
    return subprocess.run(command, cwd=package_parent, env=env, capture_output=True, text=True, check=False)


def test_the_worker_keeps_every_import_contract() -> None:
    done = _lint_imports(ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_an_import_across_the_layers_fails_the_build(tmp_path: Path) -> None:
    """The store importing the runtime (a drift seen before the contracts existed) and a
    runtime module cycle are both refused, each named with its line."""
    shutil.copytree(ROOT / "worker", tmp_path / "worker", ignore=shutil.ignore_patterns("__pycache__"))
    with (tmp_path / "worker/store/cache.py").open("a") as cache:
        cache.write("\nimport worker.runtime.member  # deliberate violation\n")
    with (tmp_path / "worker/runtime/waits.py").open("a") as waits:
        waits.write("\nimport worker.runtime.member  # deliberate cycle\n")
    done = _lint_imports(tmp_path)
    assert done.returncode != 0
    assert "worker.store is not allowed to import worker.runtime" in done.stdout
    assert "worker.store.cache -> worker.runtime.member" in done.stdout
    assert "No cycles are allowed in worker.runtime" in done.stdout
