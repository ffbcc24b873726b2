"""arize-phoenix's whole Alembic history, replayed on PostgreSQL before and after
`migrafix rewrite`: upgrade head, downgrade base, upgrade head; every step must succeed, and the
schemas (pg_dump --schema-only, and the inspector) must be identical.

Phoenix's env.py imports phoenix (its config, engines, models) for one thing Alembic uses at
run time: `target_metadata = Base.metadata`, whose naming convention names every constraint a
revision leaves unnamed. Its revision files import nothing of phoenix. So the history runs here
with a minimal env.py holding that convention (corpus.PHOENIX_NAMING_CONVENTION, copied from
phoenix/db/models.py) and phoenix's own transaction settings (`transactional_ddl`,
`transaction_per_migration`, one outer transaction): no install of phoenix, no import of it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import corpus
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

pytestmark = [pytest.mark.corpus, pytest.mark.postgres]

ENV_PY = f'''\
import sqlalchemy as sa
from alembic import context

# What phoenix's env.py takes from phoenix.db.models.Base.metadata: its naming convention.
target_metadata = sa.MetaData(naming_convention={dict(corpus.PHOENIX_NAMING_CONVENTION)!r})

engine = sa.create_engine(context.config.attributes["url"], poolclass=sa.pool.NullPool)
with engine.connect() as connection:
    transaction = connection.begin()  # as phoenix's run_migrations() does
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        transactional_ddl=True,
        transaction_per_migration=True,
    )
    context.run_migrations()
    transaction.commit()
'''


def phoenix_history(destination: Path) -> Path:
    """Phoenix's revision files with the minimal env.py: the script location."""
    project = corpus.PROJECTS_BY_NAME["arize-phoenix"]
    versions = corpus.tree(project) / "phoenix" / "db" / "migrations" / "versions"
    assert len(list(versions.glob("*.py"))) >= 35
    shutil.copytree(versions, destination / "versions")
    (destination / "env.py").write_text(ENV_PY)
    return destination


def alembic(script_location: Path, url: str, *args: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.attributes["url"] = url
    verb, target = args
    getattr(command, verb)(config, target)


def snapshot(url: str) -> dict[str, Any]:
    """Everything the inspector says about every table, names included."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        inspector = sa.inspect(engine)
        tables: dict[str, Any] = {}
        for table in sorted(inspector.get_table_names()):
            tables[table] = {
                "columns": [(c["name"], str(c["type"]), c["nullable"], c["default"])
                            for c in inspector.get_columns(table)],
                "pk": inspector.get_pk_constraint(table),
                "fks": sorted(inspector.get_foreign_keys(table), key=repr),
                "uniques": sorted(inspector.get_unique_constraints(table), key=repr),
                "checks": sorted(inspector.get_check_constraints(table), key=repr),
                "indexes": sorted(inspector.get_indexes(table), key=repr),
            }
        return tables
    finally:
        engine.dispose()


def pg_dump_executable() -> str | None:
    try:
        import pgserver

        bundled = Path(pgserver.__file__).parent / "pginstall" / "bin" / "pg_dump"
        if bundled.is_file() and not os.environ.get("MIGRAFIX_TEST_POSTGRES_URL"):
            return str(bundled)  # the embedded server's own version
    except ImportError:
        pass
    return shutil.which("pg_dump")


def schema_dump(url: str) -> str | None:
    """pg_dump --schema-only, without what differs between two dumps of one schema (the
    random \\restrict key of recent pg_dump versions); None when there is no usable pg_dump."""
    executable = pg_dump_executable()
    if executable is None:
        return None
    libpq = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    done = subprocess.run([executable, "--schema-only", "--no-owner", "--no-privileges",
                           f"--dbname={libpq}"], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(f"pg_dump unusable here: {done.stderr.strip()}", file=sys.stderr)
        return None
    return "\n".join(line for line in done.stdout.splitlines()
                     if not re.match(r"\\(un)?restrict ", line))


def replay(script_location: Path, url: str) -> tuple[dict[str, Any], str | None]:
    """upgrade head, downgrade base, upgrade head; the schema after each upgrade is the same."""
    alembic(script_location, url, "upgrade", "head")
    first = snapshot(url), schema_dump(url)
    alembic(script_location, url, "downgrade", "base")
    assert set(snapshot(url)) <= {"alembic_version"}, "downgrade base left tables behind"
    alembic(script_location, url, "upgrade", "head")
    second = snapshot(url), schema_dump(url)
    assert second == first, "upgrade -> downgrade -> upgrade does not give the same schema"
    return first


def rewrite(script_location: Path, naming: str) -> str:
    """`migrafix rewrite` over the history, with phoenix's convention in pyproject.toml."""
    convention = ", ".join(f'{k} = "{v}"' for k, v in corpus.PHOENIX_NAMING_CONVENTION.items())
    (script_location / "pyproject.toml").write_text(
        f"[tool.migrafix]\nnaming_convention = {{ {convention} }}\n")
    done = subprocess.run(
        [sys.executable, "-m", "migrafix.cli", "rewrite", "--dialect", "postgresql", "--naming",
         naming, "--no-cache", str(script_location / "versions")],
        capture_output=True, text=True, check=False)
    assert done.returncode == 1, done.stderr  # files changed, none failed
    assert "error" not in done.stderr, done.stderr
    return done.stderr


def test_phoenix_history_replays_the_same_once_rewritten(
    tmp_path: Path, pg_url: str, pg_server_url: sa.URL
) -> None:
    """Naming by the project's convention: the names Alembic gave at run time."""
    from conftest import _fresh_database

    before = phoenix_history(tmp_path / "before")
    after = phoenix_history(tmp_path / "after")
    rewritten = rewrite(after, "convention")
    assert rewritten.count("Rewriting ") == 3  # the three files with unnamed constraints

    schema_before = replay(before, pg_url)
    other = _fresh_database(pg_server_url)
    other_url = next(other)
    try:
        schema_after = replay(after, other_url)
    finally:
        next(other, None)
    assert len(schema_before[0]) > 30  # phoenix's tables, and alembic_version
    assert schema_after[0] == schema_before[0]
    if schema_before[1] is not None:
        assert schema_after[1] == schema_before[1]


def test_phoenix_history_named_by_the_database_replays_the_same(
    tmp_path: Path, pg_url: str, pg_server_url: sa.URL
) -> None:
    """What `migrafix rewrite` does by default to committed files (--naming auto: database).
    It used to write PostgreSQL's names where phoenix's convention had named the constraints,
    and the downgrade died in a later revision (test_corpus_regressions.py::
    test_database_naming_gives_the_name_the_projects_convention_gave_at_run_time)."""
    from conftest import _fresh_database

    before = phoenix_history(tmp_path / "before")
    after = phoenix_history(tmp_path / "after")
    assert rewrite(after, "database").count("Rewriting ") == 3
    schema_before = replay(before, pg_url)
    other = _fresh_database(pg_server_url)
    other_url = next(other)
    try:
        schema_after = replay(after, other_url)
    finally:
        next(other, None)
    assert schema_after[0] == schema_before[0]
