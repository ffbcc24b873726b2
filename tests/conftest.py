"""Real database fixtures: one fresh database per test on PostgreSQL, MySQL/MariaDB, SQLite."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from harness import postgres_server
from sqlalchemy.engine import URL, make_url

PG_ENV = "MIGRAFIX_TEST_POSTGRES_URL"
MYSQL_ENV = "MIGRAFIX_TEST_MYSQL_URL"


@pytest.fixture(scope="session", autouse=True)
def _result_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The CLI's result cache in a folder of this test session's, never the user's: in-process
    runs and `migrafix` subprocesses alike read $MIGRAFIX_CACHE_DIR."""
    previous = os.environ.get("MIGRAFIX_CACHE_DIR")
    os.environ["MIGRAFIX_CACHE_DIR"] = str(tmp_path_factory.mktemp("migrafix-cache"))
    yield
    if previous is None:
        os.environ.pop("MIGRAFIX_CACHE_DIR", None)
    else:
        os.environ["MIGRAFIX_CACHE_DIR"] = previous


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[URL]:
    """SQLAlchemy URL of a PostgreSQL server: $MIGRAFIX_TEST_POSTGRES_URL or an embedded one."""
    with postgres_server(os.environ.get(PG_ENV)) as url:
        yield url


def _fresh_database(server_url: URL) -> Iterator[str]:
    """Create a uniquely named database, yield its URL, drop it afterwards."""
    name = f"migrafix_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    quoted = admin.dialect.identifier_preparer.quote_identifier(name)
    # PostgreSQL refuses to drop a database with open sessions unless forced.
    force = " WITH (FORCE)" if admin.dialect.name == "postgresql" else ""
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {quoted}"))
    try:
        yield server_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {quoted}{force}"))


@pytest.fixture
def pg_url(pg_server_url: URL) -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL database (psycopg 3 driver)."""
    yield from _fresh_database(pg_server_url)


@pytest.fixture
def mysql_url() -> Iterator[str]:
    """URL of a fresh, empty MySQL/MariaDB database; skips without $MIGRAFIX_TEST_MYSQL_URL."""
    env_url = os.environ.get(MYSQL_ENV)
    if not env_url:
        pytest.skip(f"{MYSQL_ENV} not set")
    # Connect without a database: the one in the URL need not exist.
    yield from _fresh_database(make_url(env_url).set(database=None))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """URL of a SQLite database file in the test's tmp_path."""
    return f"sqlite:///{tmp_path / 'test.db'}"
