"""The result cache (codemod/cache.py) and the CLI's start: a warm run answers as a cold one
does, and `check` does not import what it does not need."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from migrafix.codemod import FileFinding, Options, fix_source
from migrafix.codemod.cache import CACHE_ENV, Entry, ResultCache, default_directory
from migrafix.codemod.project import _BUILT_IN_DIALECTS, known_dialect
from migrafix.settings import Settings

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "codemod" / "fk_none_names"


def test_a_key_is_the_bytes_the_options_and_the_code(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path)
    options = Options(Settings(), "postgresql", "convention")
    key = cache.key(b"x", options)
    assert key == ResultCache(tmp_path).key(b"x", Options(Settings(), "postgresql",
                                                          "convention"))
    assert key != cache.key(b"y", options)
    assert key != cache.key(b"x", Options(Settings(), "postgresql", "database"))
    assert key != cache.key(b"x", Options(Settings(), "mysql", "convention"))
    assert key != cache.key(b"x", Options(Settings(ignore=("not-null-add",)), "postgresql",
                                          "convention"))
    assert key != cache.key(b"x", Options(Settings(naming_convention={"fk": "fk_%(table_name)s"}),
                                          "postgresql", "convention"))


def test_an_entry_comes_back_as_it_went_in(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path)
    entry = Entry((FileFinding("unnamed-constraint", 3, 5, "upgrade: é", True),
                   FileFinding("not-null-add", 9, 5, "upgrade: no backfill", False, "--backfill")),
                  "fixed ✓\n")
    cache.put("ab" * 32, entry)
    assert cache.get("ab" * 32) == entry
    assert cache.get("cd" * 32) is None
    cache.put("ef" * 32, Entry((), None))
    assert cache.get("ef" * 32) == Entry((), None)


def test_a_damaged_entry_is_a_miss(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path)
    cache.put("ab" * 32, Entry((), None))
    (path,) = [p for p in tmp_path.rglob("*") if p.is_file()]
    path.write_text('{"findings": [["x"]]')
    assert cache.get("ab" * 32) is None


def test_a_cache_that_cannot_be_written_is_no_cache(tmp_path: Path) -> None:
    (tmp_path / "a file").write_text("")
    cache = ResultCache(tmp_path / "a file" / "cache")  # no folder can be made there
    cache.put("ab" * 32, Entry((), None))  # no error
    assert cache.get("ab" * 32) is None


def test_the_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "here"))
    assert default_directory() == tmp_path / "here"
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_directory() == tmp_path / "xdg" / "migrafix"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_directory() == Path.home() / ".cache" / "migrafix"


def migrafix(cwd: Path, cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, CACHE_ENV: str(cache)}
    return subprocess.run([sys.executable, "-m", "migrafix.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def entries(cache: Path) -> list[Path]:
    return [p for p in cache.rglob("*") if p.is_file()]


def test_a_warm_run_answers_as_a_cold_one(tmp_path: Path) -> None:
    versions = tmp_path / "versions"
    versions.mkdir()
    shutil.copy(FIXTURE / "before.py", versions / "a1.py")
    cache = tmp_path / "cache"
    args = ["--naming", "convention", "versions"]

    cold = migrafix(tmp_path, cache, "check", *args)
    assert cold.returncode == 1 and entries(cache)
    warm = migrafix(tmp_path, cache, "check", *args)
    assert (warm.returncode, warm.stdout, warm.stderr) == (1, cold.stdout, cold.stderr)

    # check stores the findings alone: rewrite computes the fixed text and completes the entry
    (entry,) = entries(cache)
    assert json.loads(entry.read_text())["complete"] is False
    diff = migrafix(tmp_path, cache, "rewrite", "--diff", *args)
    assert diff.returncode == 1 and diff.stdout.startswith("--- versions/a1.py")
    assert diff.stdout == migrafix(tmp_path, tmp_path / "other", "rewrite", "--diff",
                                   *args).stdout
    assert entries(cache) == [entry] and json.loads(entry.read_text())["complete"] is True
    again = migrafix(tmp_path, cache, "check", *args)  # a complete entry answers check too
    assert (again.returncode, again.stdout, again.stderr) == (1, cold.stdout, cold.stderr)

    done = migrafix(tmp_path, cache, "rewrite", *args)  # written from the cache's entry
    assert done.returncode == 1
    expected = fix_source((FIXTURE / "before.py").read_text(),
                          Options(Settings(), "postgresql", "convention")).source
    assert (versions / "a1.py").read_text() == expected
    assert migrafix(tmp_path, cache, "rewrite", *args).returncode == 0


def test_no_cache_reads_and_writes_nothing(tmp_path: Path) -> None:
    versions = tmp_path / "versions"
    versions.mkdir()
    shutil.copy(FIXTURE / "before.py", versions / "a1.py")
    cache = tmp_path / "cache"
    assert migrafix(tmp_path, cache, "check", "--no-cache", "versions").returncode == 1
    assert not cache.exists()


def test_check_starts_without_sqlalchemy_alembic_libcst_or_black() -> None:
    """`migrafix check` answered by its cache imports none of them (0.1 s instead of 0.8 s)."""
    code = ("import sys, migrafix.cli, migrafix.codemod.runner\n"
            "print(sorted(m for m in ('sqlalchemy', 'alembic', 'libcst', 'black')"
            " if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"


def test_check_of_a_file_with_findings_imports_neither_black_nor_libcst_codemod() -> None:
    """`check` does not write: the writer's black and the imports pass's libcst.codemod (half a
    second of imports between them) are for `rewrite`."""
    code = ("import sys\n"
            "from migrafix.codemod import Options, check_source\n"
            f"found = check_source(open({str(FIXTURE / 'before.py')!r}).read(), Options())\n"
            "assert found, 'the fixture has findings'\n"
            "print(sorted(m for m in ('black', 'libcst.codemod', 'libcst.matchers')"
            " if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"


def test_the_built_in_dialects_are_sqlalchemys() -> None:
    import sqlalchemy.dialects

    assert set(sqlalchemy.dialects.__all__) <= _BUILT_IN_DIALECTS
    from sqlalchemy.dialects import registry

    for name in _BUILT_IN_DIALECTS:
        registry.load(name)
        assert known_dialect(name)
    assert not known_dialect("nosuchdialect")


def test_the_hook_is_still_there_on_first_use() -> None:
    import migrafix

    assert callable(migrafix.process_revision_directives)
    assert migrafix.process_revision_directives is migrafix.process_revision_directives
    from migrafix import Hook, chain, hook

    assert isinstance(hook(), Hook) and callable(chain())
    with pytest.raises(AttributeError):
        migrafix.no_such_thing  # noqa: B018
