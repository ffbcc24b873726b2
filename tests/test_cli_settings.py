"""Settings only the codemod uses: per-path settings and the models' naming convention."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "codemod" / "fk_none_names"


def migrafix(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "migrafix.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120, check=False)


def test_per_path_settings_apply_to_the_files_their_glob_matches(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.migrafix.per_path]\n"versions/legacy/*" = '
        '{ ignore = ["unnamed-constraint", "validating-constraint-add", "lock-timeout"] }\n')
    for folder in ("legacy", "current"):
        (tmp_path / "versions" / folder).mkdir(parents=True)
        shutil.copy(FIXTURE / "before.py", tmp_path / "versions" / folder / "a.py")
    result = migrafix(tmp_path, "check", "--naming", "convention", "versions")
    assert result.returncode == 1
    files = {line.split(":")[0] for line in result.stdout.splitlines()}
    assert files == {"versions/current/a.py"}


def test_a_per_path_entry_with_a_misspelled_setting_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.migrafix.per_path]\n"versions/*" = { ignor = ["unnamed-constraint"] }\n')
    (tmp_path / "versions").mkdir()
    shutil.copy(FIXTURE / "before.py", tmp_path / "versions" / "a.py")
    result = migrafix(tmp_path, "check", "versions")
    assert result.returncode == 2
    assert "per-path 'versions/*': unknown migrafix setting 'ignor'" in result.stderr


def test_metadata_setting_names_by_the_models_naming_convention(tmp_path: Path) -> None:
    (tmp_path / "myapp").mkdir()
    (tmp_path / "myapp" / "__init__.py").write_text("")
    (tmp_path / "myapp" / "models.py").write_text(
        "import sqlalchemy as sa\n"
        'metadata = sa.MetaData(naming_convention={"fk": "fk_%(table_name)s_%(column_0_name)s"})\n')
    (tmp_path / "pyproject.toml").write_text(
        '[tool.migrafix]\nmetadata = "myapp.models:metadata"\n')
    (tmp_path / "versions").mkdir()
    shutil.copy(FIXTURE / "before.py", tmp_path / "versions" / "a.py")
    result = migrafix(tmp_path, "rewrite", "--naming", "convention", "versions")
    assert result.returncode == 1, result.stderr
    text = (tmp_path / "versions" / "a.py").read_text()
    assert text.count("op.f('fk_order_invoice_id')") == 2  # the project's, in upgrade and downgrade


def test_metadata_setting_that_does_not_load_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.migrafix]\nmetadata = "nowhere.models:x"\n')
    (tmp_path / "versions").mkdir()
    shutil.copy(FIXTURE / "before.py", tmp_path / "versions" / "a.py")
    result = migrafix(tmp_path, "check", "versions")
    assert result.returncode == 2
    assert "metadata = 'nowhere.models:x': cannot load it: No module named 'nowhere'" \
        in result.stderr
