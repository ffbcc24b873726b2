"""The hooks of .pre-commit-hooks.yaml, run by a real pre-commit in a real git repository.

The hook repository is a commit of this working tree (uncommitted files included), so what is
tested is what the files say now. pre-commit installs migrafix into its own virtualenv from that
commit, with its dependencies from the package index: the first test takes a while.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_cli import CLEAN, FK, UNPARSEABLE, named_by_convention

ROOT = Path(__file__).resolve().parent.parent
REVISION = "migrations/versions/a1b2c3d4e5f6_add_invoice.py"


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    done = subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True,
                          text=True)
    return done.stdout.strip()


@dataclass(frozen=True)
class HookRepo:
    path: Path
    rev: str


@pytest.fixture(scope="session")
def hook_repo(tmp_path_factory: pytest.TempPathFactory) -> HookRepo:
    """A git repository holding this working tree, committed."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    path = tmp_path_factory.mktemp("hook-repo")
    listed = git(ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():  # listed by the index but deleted in the working tree: skip
            (path / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, path / name)
    git(path, "init", "-q", "-b", "main")
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "migrafix as it is now")
    return HookRepo(path, git(path, "rev-parse", "HEAD"))


@pytest.fixture(scope="session")
def pre_commit_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pre-commit's cache (hook environments), shared by this module's tests."""
    return tmp_path_factory.mktemp("pre-commit-home")


@pytest.fixture
def project(tmp_path: Path, hook_repo: HookRepo) -> Path:
    """A git repository using both hooks, the configuration committed."""
    git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / ".pre-commit-config.yaml").write_text(
        "repos:\n"
        f"-   repo: {hook_repo.path}\n"
        f"    rev: {hook_repo.rev}\n"
        "    hooks:\n"
        "    -   id: migrafix\n"
        "    -   id: migrafix-check\n"
    )
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "pre-commit")
    return tmp_path


def stage(project: Path, name: str, text: str) -> Path:
    """A new file, staged (as pre-commit sees it when a commit is being made), not committed."""
    path = project / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    git(project, "add", name)
    return path


def pre_commit(
    project: Path, home: Path, *hook: str, **env_vars: str
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PRE_COMMIT_HOME": str(home), "PRE_COMMIT_COLOR": "never", **env_vars}
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", "run", *hook, "--all-files"],
        cwd=project, env=env, capture_output=True, text=True, check=False, timeout=900,
    )


def test_check_hook_passes_on_a_clean_revision(project: Path, pre_commit_home: Path) -> None:
    """Files under versions/ that are not revisions (an __init__.py, a helper that does not even
    parse) are passed by pre-commit and skipped by migrafix."""
    stage(project, REVISION, CLEAN)
    stage(project, "migrations/versions/__init__.py", "")
    stage(project, "migrations/versions/helpers.py", "def broken(:\n")
    done = pre_commit(project, pre_commit_home, "migrafix-check")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "migrafix check" in done.stdout and "Passed" in done.stdout


def test_check_hook_fails_on_a_revision_that_does_not_parse(
    project: Path, pre_commit_home: Path
) -> None:
    path = stage(project, REVISION, UNPARSEABLE)
    done = pre_commit(project, pre_commit_home, "migrafix-check")
    assert done.returncode == 1
    assert f"{REVISION}: error: does not parse: line 21" in done.stdout
    assert path.read_text() == UNPARSEABLE


def test_hooks_skip_files_outside_versions(project: Path, pre_commit_home: Path) -> None:
    stage(project, "app/a1b2c3d4e5f6_add_invoice.py", FK)
    done = pre_commit(project, pre_commit_home)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("(no files to check)Skipped") == 2


def test_rewrite_hook_fixes_then_passes(project: Path, pre_commit_home: Path) -> None:
    """The new revision is not committed yet: its constraint is named by the convention."""
    path = stage(project, REVISION, FK)
    first = pre_commit(project, pre_commit_home, "migrafix")
    assert first.returncode == 1, first.stdout + first.stderr
    assert f"Rewriting {REVISION}" in first.stdout
    assert "files were modified by this hook" in first.stdout
    fixed = path.read_text()
    assert named_by_convention(fixed)

    second = pre_commit(project, pre_commit_home, "migrafix")
    assert second.returncode == 0, second.stdout + second.stderr
    assert path.read_text() == fixed


def test_check_hook_reports_fixable_findings(project: Path, pre_commit_home: Path) -> None:
    path = stage(project, REVISION, FK)
    done = pre_commit(project, pre_commit_home, "migrafix-check")
    assert done.returncode == 1
    assert f"{REVISION}:" in done.stdout and "unnamed-constraint" in done.stdout
    assert "[fixable]" in done.stdout
    assert path.read_text() == FK


# --- the configurations README.md gives -------------------------------------------------------


def readme_configs() -> list[str]:
    """The YAML blocks of README.md's pre-commit section, in order: local, then remote."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### pre-commit\n", 1)[1].split("\n### ", 1)[0]
    return re.findall(r"```yaml\n(.*?)```", section, re.DOTALL)


def committed_project(path: Path, config: str) -> Path:
    git(path, "init", "-q", "-b", "main")
    (path / ".pre-commit-config.yaml").write_text(config)
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "pre-commit")
    return path


def test_readme_local_config_works_as_written(tmp_path: Path, pre_commit_home: Path) -> None:
    """`repo: local`, `language: system`: the migrafix installed where git runs (here, the one
    beside this test's Python), no release needed."""
    local, _ = readme_configs()
    assert "repo: local" in local and "<" not in local
    project = committed_project(tmp_path, local)
    path = stage(project, REVISION, FK)
    stage(project, "app/a1b2c3d4e5f6_add_invoice.py", FK)  # outside versions/: not looked at
    path_env = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"

    first = pre_commit(project, pre_commit_home, PATH=path_env)
    assert first.returncode == 1, first.stdout + first.stderr
    assert "migrafix rewrite" in first.stdout and f"Rewriting {REVISION}" in first.stdout
    assert named_by_convention(path.read_text())
    assert (project / "app/a1b2c3d4e5f6_add_invoice.py").read_text() == FK

    second = pre_commit(project, pre_commit_home, PATH=path_env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "Passed" in second.stdout


def test_readme_remote_config_at_a_tag(
    tmp_path: Path, hook_repo: HookRepo, pre_commit_home: Path
) -> None:
    """The remote form, its two placeholders filled: this working tree's commit, tagged."""
    _, remote = readme_configs()
    git(hook_repo.path, "tag", "-f", "v0.1.0")
    config = remote.replace("<URL of this repository>", str(hook_repo.path))
    config = config.replace("<tag, e.g. v0.1.0>", "v0.1.0")
    assert "<" not in config
    project = committed_project(tmp_path, config)
    path = stage(project, REVISION, FK)
    done = pre_commit(project, pre_commit_home)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"Rewriting {REVISION}" in done.stdout
    assert named_by_convention(path.read_text())
