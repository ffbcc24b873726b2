"""The codemod on before/after pairs under fixtures/codemod/: each folder holds a revision
file (before.py), the options it is rewritten with (case.toml), the rewritten file (after.py),
the revision files created beside it where autocommit work is split off (after_pre.py,
after_post.py: `<rev>_pre`, `<rev>_post`) and what `check` reports (findings.txt), which
`check_source` finds too, without writing. MIGRAFIX_UPDATE_GOLDEN=1 rewrites the expectations,
to be reviewed in the diff."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the backport migrafix itself uses there
    import tomli as tomllib

from migrafix.codemod import Options, check_source, fix_source
from migrafix.codemod.api import FileFinding
from migrafix.settings import Settings

CASES = Path(__file__).resolve().parent.parent / "fixtures" / "codemod"
UPDATE = bool(os.environ.get("MIGRAFIX_UPDATE_GOLDEN"))


def options_for(case: Path) -> Options:
    raw = tomllib.loads((case / "case.toml").read_text())
    settings = Settings().merged(raw.get("settings", {}), str(case / "case.toml"))
    return Options(settings=settings, dialect=raw.get("dialect", "postgresql"),
                   naming=raw.get("naming", "convention"),
                   # what the models the `metadata` setting names would say
                   integer_keys=raw.get("integer_keys"))


def golden(path: Path, actual: str) -> str:
    if UPDATE:
        path.write_text(actual)
    return path.read_text()


def _state(finding: FileFinding) -> str:
    return "fixed" if finding.fixable else "note" if finding.note else "not fixed"


@pytest.mark.parametrize("case", sorted(p for p in CASES.iterdir() if p.is_dir()),
                         ids=lambda p: p.name)
def test_case(case: Path) -> None:
    before = (case / "before.py").read_text()
    options = options_for(case)
    result = fix_source(before, options)
    findings = "".join(
        f"{f.line}:{f.column}: {f.rule} {f.message} [{_state(f)}]\n" for f in result.findings
    )
    assert result.source == golden(case / "after.py", result.source)
    assert findings == golden(case / "findings.txt", findings)
    assert check_source(before, options) == result.findings
    created = {f"after_{new.part}.py": new.source or "" for new in result.new_revisions}
    if UPDATE:
        for stale in case.glob("after_*.py"):
            stale.unlink()
    for name, source in created.items():
        assert source == golden(case / name, source)
    assert sorted(p.name for p in case.glob("after_*.py")) == sorted(created)
    for name, source in {"after.py": result.source, **created}.items():
        compile(source, str(case / name), "exec")
        again = fix_source(source, options)
        assert again.source == source, name  # idempotent, the new files too
        assert not again.new_revisions, name
        assert not any(f.fixable for f in again.findings), name  # nothing left to fix


def test_a_file_with_nothing_to_fix_comes_back_as_it_was() -> None:
    before = (CASES / "nothing_to_fix" / "before.py").read_text()
    result = fix_source(before, Options())
    assert result.source is before
    assert result.findings == ()


def test_the_revision_file_is_never_executed() -> None:
    """hand_written/before.py sets an environment variable at import and imports a module
    that does not exist: reading it must do neither."""
    os.environ.pop("MIGRAFIX_SIDE_EFFECT", None)
    fix_source((CASES / "hand_written" / "before.py").read_text(), Options())
    assert "MIGRAFIX_SIDE_EFFECT" not in os.environ
    assert "myapp" not in sys.modules
