"""What a release carries: one version, shown by `migrafix --version`; the licence; a changelog."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from packaging.version import Version

import migrafix

ROOT = Path(__file__).resolve().parent.parent


def test_version_is_printed_by_the_command() -> None:
    done = subprocess.run([sys.executable, "-m", "migrafix.cli", "--version"],
                          capture_output=True, text=True, check=False)
    expected = f"migrafix {migrafix.__version__}\n"
    assert (done.returncode, done.stdout, done.stderr) == (0, expected, "")


def test_the_version_is_written_once() -> None:
    """pyproject.toml reads it from the package (the wheel's metadata is built from it)."""
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^dynamic = \["version"\]$', pyproject, re.MULTILINE)
    assert 'version = { attr = "migrafix.__version__" }' in pyproject
    assert not re.search(r'^version = "', pyproject, re.MULTILINE)
    assert re.fullmatch(r"\d+\.\d+\.\d+", migrafix.__version__)


def test_licence_and_changelog() -> None:
    licence = (ROOT / "LICENSE").read_text()
    assert licence.startswith("MIT License\n") and "the migrafix authors" in licence
    assert 'license = "MIT"' in (ROOT / "pyproject.toml").read_text()
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in changelog
    assert re.search(r"^## \[0\.1\.0\]", changelog, re.MULTILINE)


def test_ci_tests_the_lowest_versions_pyproject_accepts() -> None:
    """Each dependency's floor in pyproject.toml is the version .ci/lowest-versions.txt pins,
    so raising (or lowering) a floor moves what CI tests."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    floors = {}
    for requirement in dependencies:
        found = re.match(r"([A-Za-z0-9_.-]+)>=([0-9.]+)", requirement)
        assert found, f"no floor: {requirement}"
        floors[found.group(1).lower()] = found.group(2)
    pins = {}
    for line in (ROOT / ".ci" / "lowest-versions.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.lower()] = version
    assert {name: Version(v) for name, v in pins.items()} == {
        name: Version(v) for name, v in floors.items()}
