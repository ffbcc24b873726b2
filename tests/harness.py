"""A throwaway Alembic project on a real database, driven through the real `alembic` CLI."""

from __future__ import annotations

import contextlib
import re
import runpy
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import alembic
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import URL, make_url

DEFAULT_HOOK = "migrafix.process_revision_directives"


@contextlib.contextmanager
def postgres_server(given: str | None) -> Iterator[URL]:
    """A PostgreSQL server's URL (psycopg 3 driver): ``given``, else an embedded pgserver,
    stopped and deleted afterwards. For the tests (conftest.py) and tests/benchmark_locks.py."""
    if given:
        url = make_url(given)
        yield url.set(drivername="postgresql+psycopg") if url.drivername == "postgresql" else url
        return
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, root); harmless here.
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        from pgserver.postgres_server import get_server

        # Not under pytest's basetemp: a concurrent pytest run prunes old basetemps, and
        # would delete the data directory of a server still in use.
        data = Path(tempfile.mkdtemp(prefix="migrafix-pg-"))
        server = get_server(data, cleanup_mode="stop")
    try:
        yield make_url(server.get_uri()).set(drivername="postgresql+psycopg")
    finally:
        server.cleanup()
        shutil.rmtree(data, ignore_errors=True)
Params = Mapping[str, Any] | Sequence[Mapping[str, Any]] | None

ALEMBIC_INI = """\
[alembic]
script_location = {script_location}
prepend_sys_path = .
path_separator = os
sqlalchemy.url = {url}

[loggers]
keys = root,sqlalchemy,alembic

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = WARNING
handlers = console
qualname =

[logger_sqlalchemy]
level = WARNING
handlers =
qualname = sqlalchemy.engine

[logger_alembic]
level = INFO
handlers =
qualname = alembic

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[formatter_generic]
format = %(levelname)-5.5s [%(name)s] %(message)s
datefmt = %H:%M:%S
"""

ENV_PY = '''\
"""env.py of a migrafix test project."""
import importlib
import re
import runpy
from logging.config import fileConfig
from pathlib import Path

from alembic import context
from sqlalchemy import engine_from_config, pool

HOOK = __HOOK__
RENDER_AS_BATCH = __RENDER_AS_BATCH__
INCLUDE_SCHEMAS = __INCLUDE_SCHEMAS__

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name)

# models.py is re-read on every alembic run: tests rewrite it between revisions.
target_metadata = runpy.run_path(str(Path(__file__).with_name("models.py")))["metadata"]


def load_hook(expr):
    """Import the longest module prefix of a dotted expression, then evaluate it."""
    if expr is None:
        return None
    parts = re.match(r"[\\w.]+", expr).group(0).split(".")
    for i in range(len(parts), 0, -1):
        try:
            importlib.import_module(".".join(parts[:i]))
            break
        except ModuleNotFoundError as exc:
            if exc.name != ".".join(parts[:i]):
                raise
    return eval(expr, {parts[0]: importlib.import_module(parts[0])})


OPTIONS = dict(
    target_metadata=target_metadata,
    compare_type=True,
    render_as_batch=RENDER_AS_BATCH,
    include_schemas=INCLUDE_SCHEMAS,
    process_revision_directives=load_hook(HOOK),
)


def run_migrations_offline():
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        **OPTIONS,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    connectable = engine_from_config(
        config.get_section(config.config_ini_section, {}),
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with connectable.connect() as connection:
        context.configure(connection=connection, **OPTIONS)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
'''


def revision_text(path: Path) -> str:
    """A revision file's text without the volatile `Create Date:` line."""
    text = path.read_text()
    return re.sub(r"^Create Date: .*\n", "", text, flags=re.MULTILINE)


def body_lines(text: str, function: str = "upgrade") -> list[str]:
    """Code lines of a revision's `upgrade`/`downgrade` body, stripped, without comments."""
    body = re.search(rf"^def {function}\(.*?\n(.*?)(?=^\S|\Z)", text, re.MULTILINE | re.DOTALL)
    assert body, f"no def {function}() in:\n{text}"
    lines = [line.strip() for line in body.group(1).splitlines()]
    return [line for line in lines if line and not line.startswith(("#", '"""'))]


def without_lock_steps(lines: list[str]) -> list[str]:
    """``body_lines`` without lock-timeout's blocks (from their ``if`` on the dialect to the
    ``raise`` that reports a lock not had): for tests of what the other rules write."""
    kept: list[str] = []
    inside = False
    for line in lines:
        inside = inside or line == 'if op.get_context().dialect.name == "postgresql":'
        if not inside:
            kept.append(line)
        elif line.startswith("raise CommandError("):
            inside = False
    return kept


def lock_statements(lines: list[str]) -> list[str]:
    """The LOCK TABLE statements of lock-timeout's blocks in ``body_lines``, in order."""
    return [line for line in lines if line.startswith("LOCK TABLE ")]


class AlembicProject:
    """An Alembic project in `root` (alembic.ini, env.py, versions/, models.py) on `url`."""

    def __init__(
        self,
        root: Path,
        url: str,
        *,
        render_as_batch: bool = False,
        hook: str | None = DEFAULT_HOOK,
        include_schemas: bool = False,
    ) -> None:
        root = root.resolve()  # alembic runs with cwd=root: keep every path absolute
        self.root = root
        self.url = url
        self.ini = root / "alembic.ini"
        self.versions = root / "versions"
        self.models = root / "models.py"
        self.last: subprocess.CompletedProcess[str] | None = None
        self.engine = sa.create_engine(url, poolclass=sa.NullPool)
        self._revisions = 0

        self.versions.mkdir(parents=True, exist_ok=True)
        # configparser interpolates "%": URLs may carry %2F (e.g. a socket directory).
        ini = ALEMBIC_INI.format(
            script_location=str(root).replace("%", "%%"), url=url.replace("%", "%%")
        )
        self.ini.write_text(ini)
        env = ENV_PY.replace("__HOOK__", repr(hook))
        env = env.replace("__RENDER_AS_BATCH__", repr(render_as_batch))
        (root / "env.py").write_text(env.replace("__INCLUDE_SCHEMAS__", repr(include_schemas)))
        self.include_schemas = include_schemas
        template = Path(alembic.__file__).parent / "templates" / "generic" / "script.py.mako"
        shutil.copy(template, root / "script.py.mako")

    def write_models(self, source: str) -> None:
        """Write models.py; `source` must define `metadata`."""
        self.models.write_text(source)

    def alembic(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run `alembic -c alembic.ini *args` in a subprocess; raise on failure if `check`."""
        cmd = [sys.executable, "-m", "alembic", "-c", str(self.ini), *args]
        result = subprocess.run(
            cmd, cwd=self.root, capture_output=True, text=True, timeout=120, check=False
        )
        self.last = result
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(args)!r} exited {result.returncode}\n"
                f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
            )
        return result

    def revision(
        self,
        message: str,
        *,
        autogenerate: bool = True,
        x: Iterable[str] = (),
        rev_id: str | None = None,
    ) -> list[Path]:
        """Create a revision (ids 0001, 0002, ... unless `rev_id`); return the new files."""
        self._revisions += 1
        before = set(self.versions.glob("*.py"))
        x_args = [arg for value in x for arg in ("-x", value)]
        args = [*x_args, "revision", "-m", message, "--rev-id", rev_id or f"{self._revisions:04d}"]
        self.alembic(*args, *(["--autogenerate"] if autogenerate else []))
        return sorted(set(self.versions.glob("*.py")) - before)

    def hand_written(
        self, message: str, upgrade: str, downgrade: str, *, rev_id: str | None = None
    ) -> Path:
        """A revision written by hand: Alembic's empty one, its ``upgrade()`` and
        ``downgrade()`` bodies replaced by ``upgrade`` and ``downgrade`` (lines indented by
        4 spaces, each ending in a newline)."""
        [path] = self.revision(message, autogenerate=False, rev_id=rev_id)
        text = path.read_text()
        for function, body in (("upgrade", upgrade), ("downgrade", downgrade)):
            empty = re.search(rf'def {function}\(\) -> None:\n    """.*"""\n(    pass\n)', text)
            assert empty, f"no empty {function}() in:\n{text}"
            text = text[: empty.start(1)] + body + text[empty.end(1) :]
        path.write_text(text)
        return path

    def execute(self, sql: str, params: Params = None) -> None:
        """Execute SQL on the project's database and commit."""
        with self.engine.begin() as conn:
            conn.execute(sa.text(sql), params)

    def rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Rows of a query on the project's database."""
        with self.engine.begin() as conn:
            return [tuple(row) for row in conn.execute(sa.text(sql), params)]

    def metadata(self) -> sa.MetaData:
        """The `metadata` defined by the current models.py."""
        metadata: sa.MetaData = runpy.run_path(str(self.models))["metadata"]
        return metadata

    def diffs(self) -> list[Any]:
        """Autogenerate's diff between the database and models.py, server defaults included;
        [] means in sync."""
        with self.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={
                "compare_type": True, "compare_server_default": True,
                "include_schemas": self.include_schemas})
            return list(compare_metadata(context, self.metadata()))
