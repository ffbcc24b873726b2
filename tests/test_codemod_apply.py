"""The golden codemod outputs (fixtures/codemod/*/after.py) applied on a real database with
rows: a case whose case.toml says `apply = "<scenario>"` is the v2 revision of that scenario
(tests/scenarios.py), so it runs after the scenario's v1 (with the revisions split off it,
after_pre.py and after_post.py), through upgrade → downgrade → upgrade, keeping the rows and
leaving the schema equal to the models."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the backport migrafix itself uses there
    import tomli as tomllib
from harness import AlembicProject
from scenarios import ALL, Scenario, quoted

CASES = Path(__file__).resolve().parent.parent / "fixtures" / "codemod"
SCENARIOS = {scenario.name: scenario for scenario in ALL}


def applicable() -> list[object]:
    params = []
    for case in sorted(p for p in CASES.iterdir() if p.is_dir()):
        raw = tomllib.loads((case / "case.toml").read_text())
        if "apply" in raw:
            dialect = raw.get("dialect", "postgresql")
            marks = [pytest.mark.postgres] if dialect == "postgresql" else []
            params.append(pytest.param(case, SCENARIOS[raw["apply"]], dialect,
                                       id=case.name, marks=marks))
    return params


@pytest.mark.parametrize(("case", "scenario", "dialect"), applicable())
def test_rewritten_revision_applies_with_rows(
    case: Path, scenario: Scenario, dialect: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue(
        {"postgresql": "pg_url", "mysql": "mysql_url"}.get(dialect, "sqlite_url"))
    project = AlembicProject(request.getfixturevalue("tmp_path"), url, hook=None)
    project.write_models(scenario.v1)
    project.revision("v1")
    project.alembic("upgrade", "head")
    for statement in scenario.seed:
        project.execute(quoted(statement, dialect))
    shutil.copy(case / "after.py", project.versions / "0002_rewritten.py")
    for part in case.glob("after_*.py"):  # the revisions split off it: 0002_pre, 0002_post
        shutil.copy(part, project.versions / f"0002_{part.stem.removeprefix('after_')}.py")
    project.write_models(scenario.v2)

    if case.name == "not_null_no_backfill":
        # The TODO is left for a person: until it is filled, SET NOT NULL meets the rows.
        result = project.alembic("upgrade", "head", check=False)
        assert result.returncode != 0
        assert 'column "status" of relation "order" contains null values' in result.stderr
        return
    for _ in range(2):
        project.alembic("upgrade", "head")
        assert project.rows(quoted(scenario.query_after, dialect)) == scenario.expected_after
        assert project.diffs() == []
        project.alembic("downgrade", "0001")
        assert project.rows(quoted(scenario.query_before, dialect)) == scenario.expected_before
