"""The GitHub Action (action.yml): its shape, and its check step's script run by bash here.

The script is run as the runner would: ``${{ inputs.NAME }}`` in the step's ``env`` replaced by
the input's value, the script itself unchanged. What is not run here is GitHub's part:
actions/setup-python, and the step that pip-installs migrafix from the action's checkout.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_cli import CLEAN, FK, FK_UPGRADE_LINE
from test_sarif import code_scanning_problems

ROOT = Path(__file__).resolve().parent.parent
V = "migrations/versions"
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def action() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "action.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def step(name: str) -> dict[str, Any]:
    (found,) = [s for s in action()["runs"]["steps"] if s.get("name") == name]
    return found


def run_check_step(cwd: Path, **inputs: str) -> subprocess.CompletedProcess[str]:
    declared = action()["inputs"]
    # A default taken from the event (the pull request's base) is empty on other events.
    values = {name: inputs.get(name.replace("-", "_"), "" if EXPRESSION.search(
                  str(spec.get("default", ""))) else spec.get("default", ""))
              for name, spec in declared.items()}

    def evaluate(match: re.Match[str]) -> str:
        expression = match.group(1)
        assert expression.startswith("inputs."), expression
        return values[expression.removeprefix("inputs.")]

    check = step("migrafix check")
    assert check["shell"] == "bash"
    assert not EXPRESSION.search(check["run"]), "inputs must reach the script as variables"
    env = {**os.environ, "GITHUB_ACTION_PATH": str(ROOT)}
    env.update({key: EXPRESSION.sub(evaluate, str(value)) for key, value in check["env"].items()})
    # `python` is the one setup-python puts first on PATH; here, this test's interpreter.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    bash = shutil.which("bash")
    assert bash is not None
    return subprocess.run([bash, "-e", "-c", check["run"]], cwd=cwd, env=env,
                          capture_output=True, text=True, check=False, timeout=300)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / V).mkdir(parents=True)
    (tmp_path / V / "a1_fk.py").write_text(FK)
    (tmp_path / V / "a2 clean.py").write_text(CLEAN)
    return tmp_path


def test_action_is_a_composite_that_installs_the_checked_out_migrafix() -> None:
    spec = action()
    assert spec["runs"]["using"] == "composite"
    assert spec["inputs"]["paths"]["required"] is True
    assert set(spec["inputs"]) == {"paths", "args", "released-in", "python-version",
                                   "sarif-file"}
    assert spec["inputs"]["released-in"]["default"] == "${{ github.event.pull_request.base.sha }}"
    setup, install, check = spec["runs"]["steps"]
    assert setup["uses"].startswith("actions/setup-python@")
    assert setup["with"] == {"python-version": "${{ inputs.python-version }}"}
    assert install["shell"] == "bash" and '"$GITHUB_ACTION_PATH"' in install["run"]
    assert check["name"] == "migrafix check"
    for declared in spec["inputs"].values():
        assert declared["description"]


def test_action_matches_the_schema_of_github_actions() -> None:
    """The action metadata schema from SchemaStore, as check-jsonschema ships it."""
    done = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-actions",
         str(ROOT / "action.yml")], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_check_step_annotates_findings_and_fails(project: Path) -> None:
    done = run_check_step(project, paths=V, args="--naming convention")
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(
        f"::warning file={V}/a1_fk.py,line={FK_UPGRADE_LINE},col=5,title=unnamed-constraint::"
    )


def git(folder: Path, *arguments: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *arguments],
                          cwd=folder, check=True, capture_output=True, text=True).stdout


def test_check_step_takes_a_pull_requests_revisions_for_new(project: Path) -> None:
    """The runner's checkout has the pull request's revision committed; its base does not
    have it (nor is it in the clone: the step fetches it from origin)."""
    upstream = project.parent / "upstream"
    upstream.mkdir()
    git(upstream, "init", "-q")
    (upstream / "README").write_text("base\n")
    git(upstream, "add", ".")
    git(upstream, "commit", "-q", "-m", "base")
    base = git(upstream, "rev-parse", "HEAD").strip()
    git(project, "init", "-q")
    git(project, "remote", "add", "origin", str(upstream))
    git(project, "add", ".")
    git(project, "commit", "-q", "-m", "the pull request")
    released = run_check_step(project, paths=V)  # HEAD has it: it already ran
    assert "found by its columns when it runs" in released.stdout, released.stdout
    done = run_check_step(project, paths=V, released_in=base)
    assert done.returncode == 1, done.stderr
    assert done.stdout.count("named fk_order_invoice_id_invoice") == 2, done.stdout


def test_check_step_passes_on_clean_files_named_with_quotes(project: Path) -> None:
    done = run_check_step(project, paths=f"'{V}/a2 clean.py'")
    assert (done.returncode, done.stdout) == (0, ""), done.stderr


def test_check_step_writes_a_sarif_log_when_asked(project: Path) -> None:
    done = run_check_step(project, paths=V, args="--naming convention",
                          sarif_file="migrafix.sarif")
    assert done.returncode == 1, done.stderr
    assert done.stdout.count("::warning ") == 2  # annotations as well
    log = json.loads((project / "migrafix.sarif").read_text())
    assert code_scanning_problems(log) == []
    assert [r["ruleId"] for r in log["runs"][0]["results"]] == ["unnamed-constraint"] * 2


def test_check_step_reports_an_unreadable_file_once_and_exits_2(project: Path) -> None:
    (project / V / "a3_latin1.py").write_bytes(b"#\xff\n" + CLEAN.encode())
    done = run_check_step(project, paths=V, args="--naming convention",
                          sarif_file="migrafix.sarif")
    assert done.returncode == 2
    assert done.stdout.count("::error ") == 1
    assert done.stderr.count("not valid UTF-8") == 1
    log = json.loads((project / "migrafix.sarif").read_text())
    assert log["runs"][0]["invocations"][0]["executionSuccessful"] is False
