"""Real released histories, built from their original files and from the files `migrafix
rewrite` gives, on every database they run on: the two schemas must be the same, names
included, and the rewritten downgrade must take a database the original built back to base.

- arize-phoenix (PostgreSQL and SQLite): its env.py imports phoenix (its config, engines,
  models) for one thing Alembic uses at run time: `target_metadata = Base.metadata`, whose
  naming convention names every constraint a revision leaves unnamed. Its revision files
  import nothing of phoenix. So the history runs here with a minimal env.py holding that
  convention (corpus.PHOENIX_NAMING_CONVENTION, copied from phoenix/db/models.py) and
  phoenix's own transaction settings (`transactional_ddl`, `transaction_per_migration`, one
  outer transaction): no install of phoenix, no import of it.
- optuna (PostgreSQL, MySQL/MariaDB, SQLite): the revisions up to v1.3.0.a, which create all
  its tables with unnamed constraints, import only SQLAlchemy; the later ones import optuna.

`--naming database` is what `rewrite` does to a released history: it must leave the creates
as they are (issue 11: it used to write PostgreSQL's names into optuna's create_tables, and a
build on SQLite or MySQL then differed from every deployed one). `--naming convention` is what
it does to files that have not run: phoenix's convention gives Alembic's own run-time names.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import corpus
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

pytestmark = pytest.mark.corpus

PHOENIX_ENV = f'''\
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


# optuna's env.py, less its import of optuna's models (whose MetaData has no convention)
PLAIN_ENV = '''\
import sqlalchemy as sa
from alembic import context

engine = sa.create_engine(context.config.attributes["url"], poolclass=sa.pool.NullPool)
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=sa.MetaData())
    with context.begin_transaction():
        context.run_migrations()
'''


@dataclass(frozen=True)
class History:
    project: str
    versions: str  # the folder of its revision files in the wheel
    env: str
    head: str  # the last revision that runs without the project installed
    dialects: tuple[str, ...]
    convention: Mapping[str, str] = field(default_factory=dict)
    files: str = "*.py"  # those up to head: Alembic imports every file it finds

    def copy(self, destination: Path) -> Path:
        """The revision files with the minimal env.py: the script location."""
        versions = corpus.tree(corpus.PROJECTS_BY_NAME[self.project]) / self.versions
        (destination / "versions").mkdir(parents=True)
        for path in versions.glob(self.files):
            shutil.copy(path, destination / "versions" / path.name)
        (destination / "env.py").write_text(self.env)
        return destination


PHOENIX = History("arize-phoenix", "phoenix/db/migrations/versions", PHOENIX_ENV, "head",
                  ("postgresql", "sqlite"), corpus.PHOENIX_NAMING_CONVENTION)
OPTUNA = History("optuna", "optuna/storages/_rdb/alembic/versions", PLAIN_ENV, "v1.3.0.a",
                 ("postgresql", "mysql", "sqlite"), files="v[01].*.py")


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
                "fks": _sorted(inspector.get_foreign_keys(table)),
                "uniques": _sorted(inspector.get_unique_constraints(table)),
                "checks": _sorted(inspector.get_check_constraints(table)),
                "indexes": _sorted(inspector.get_indexes(table)),
            }
        return tables
    finally:
        engine.dispose()


def _sorted(reflected: list[Any]) -> list[Any]:
    """``reflected`` comparable: SQL it holds (an index's ``sqlite_where``) as its text."""
    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: plain(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(item) for item in value]
        return str(value) if isinstance(value, sa.sql.ClauseElement) else value

    return sorted((plain(item) for item in reflected), key=repr)


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


def rewrite(script_location: Path, naming: str, convention: Mapping[str, str]) -> str:
    """`migrafix rewrite` over the history, with the project's convention in pyproject.toml;
    its standard error."""
    tokens = ", ".join(f'{k} = "{v}"' for k, v in convention.items())
    # phoenix's env.py opens its own transaction, where an autocommit block cannot run: such a
    # project ignores the rules that write one (README, "Settings")
    (script_location / "pyproject.toml").write_text(
        f"[tool.migrafix]\nnaming_convention = {{ {tokens} }}\n"
        'ignore = ["concurrent-index", "unique-constraint-add", "validating-constraint-add"]\n')
    done = subprocess.run(
        [sys.executable, "-m", "migrafix.cli", "rewrite", "--dialect", "postgresql", "--naming",
         naming, "--no-cache", str(script_location / "versions")],
        capture_output=True, text=True, check=False)
    assert done.returncode in (0, 1), done.stderr  # changed or not, none failed
    assert "error" not in done.stderr, done.stderr
    return done.stderr


def databases(dialect: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Fresh databases of ``dialect``, one per ``next``."""
    if dialect == "sqlite":
        for number in range(2):
            yield f"sqlite:///{tmp_path / f'{number}.db'}"
        return
    from conftest import MYSQL_ENV, _fresh_database

    if dialect == "postgresql":
        server = request.getfixturevalue("pg_server_url")
    else:
        if not os.environ.get(MYSQL_ENV):
            pytest.skip(f"{MYSQL_ENV} not set")
        server = make_url(os.environ[MYSQL_ENV]).set(database=None)
    for _ in range(2):
        fresh = _fresh_database(server)
        request.addfinalizer(lambda fresh=fresh: next(fresh, None))  # type: ignore[misc]
        yield next(fresh)


# phoenix by the database on PostgreSQL would be its convention case less the rewritten
# build (the files come back unchanged): 20 s for nothing more.
CASES = [
    pytest.param(history, naming, dialect, id=f"{history.project}-{naming}-{dialect}",
                 marks=[pytest.mark.postgres] if dialect == "postgresql" else [])
    for history, naming in ((PHOENIX, "convention"), (PHOENIX, "database"), (OPTUNA, "database"))
    for dialect in history.dialects
    if (history.project, naming, dialect) != ("arize-phoenix", "database", "postgresql")
]


@pytest.mark.parametrize(("history", "naming", "dialect"), CASES)
def test_a_rewritten_history_builds_what_the_original_built(
    history: History, naming: str, dialect: str, tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    original = history.copy(tmp_path / "original")
    rewritten = history.copy(tmp_path / "rewritten")
    changed = rewrite(rewritten, naming, history.convention).count("Rewriting ")
    deployed, fresh = databases(dialect, request, tmp_path)

    alembic(original, deployed, "upgrade", history.head)
    built = snapshot(deployed), schema_dump(deployed) if dialect == "postgresql" else None
    assert len(built[0]) > 5
    if changed:
        alembic(rewritten, fresh, "upgrade", history.head)
        assert snapshot(fresh) == built[0]
        if built[1] is not None:
            assert schema_dump(fresh) == built[1]
    else:  # the files are the original's, byte for byte: the fresh build is the deployed one
        for path in (original / "versions").glob("*.py"):
            assert (rewritten / "versions" / path.name).read_bytes() == path.read_bytes()

    # A database the original history built, downgraded by the rewritten files.
    alembic(rewritten, deployed, "downgrade", "base")
    assert set(snapshot(deployed)) <= {"alembic_version"}, "downgrade base left tables behind"

    # Phoenix names its constraints by its convention: three files have unnamed ones, which
    # the database naming leaves to Alembic, and the convention names as Alembic does; taken
    # for new, its revisions that lock a table existing before them get lock-timeout's lock
    # step too, 18 files in all (rewritten for PostgreSQL: the builds above ran it there, and
    # skipped it on SQLite). optuna's create_tables are left to the database.
    assert changed == {("arize-phoenix", "convention"): 18}.get((history.project, naming), 0)


def test_check_calls_nothing_fixable_in_a_released_history() -> None:
    """optuna's first revision creates 9 tables with unnamed constraints and drops them with
    the tables: nothing there is broken, and `check --naming database` must say nothing."""
    versions = corpus.tree(corpus.PROJECTS_BY_NAME["optuna"]) / OPTUNA.versions
    done = subprocess.run(
        [sys.executable, "-m", "migrafix.cli", "check", "--naming", "database", "--dialect",
         "postgresql", "--no-cache", str(versions / "v0.9.0.a.py")],
        capture_output=True, text=True, check=False)
    assert (done.returncode, done.stdout) == (0, ""), done.stdout + done.stderr
