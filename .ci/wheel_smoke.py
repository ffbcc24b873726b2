"""Run by .ci/run with the Python of a fresh venv that has only the built wheel installed:
what a user gets from `pip install migrafix`, used as a user would.

    python .ci/wheel_smoke.py DIST_FOLDER

Checks the sdist's and the wheel's contents, then, in a new Alembic project on SQLite (made by
`alembic init`), runs `alembic revision --autogenerate` with the hook in env.py, applies the
revision to a table with rows (upgrade, downgrade, upgrade), and runs `migrafix check`,
`rewrite` and `--version` from the venv's scripts. Exits non-zero on the first surprise.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import migrafix

BIN = Path(sys.executable).parent
ENV = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}

MODELS_V1 = """\
import sqlalchemy as sa

metadata = sa.MetaData()
invoice = sa.Table("invoice", metadata, sa.Column("id", sa.Integer, primary_key=True))
customer = sa.Table(
    "customer", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(100)),
)
"""
MODELS_V2 = MODELS_V1.replace(
    '    sa.Column("name", sa.String(100)),\n',
    '    sa.Column("full_name", sa.String(100), info={"renamed_from": "name"}),\n'
    '    sa.Column("status", sa.String(20), nullable=False, info={"backfill": "active"}),\n'
    '    sa.Column("invoice_id", sa.Integer, sa.ForeignKey("invoice.id")),\n',
)
ENV_PY = """\
import runpy
from pathlib import Path

from alembic import context
from sqlalchemy import engine_from_config, pool

import migrafix

config = context.config
models = Path(__file__).resolve().parent.parent / "models.py"
target_metadata = runpy.run_path(str(models))["metadata"]

connectable = engine_from_config(config.get_section(config.config_ini_section, {}),
                                 prefix="sqlalchemy.", poolclass=pool.NullPool)
with connectable.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        process_revision_directives=migrafix.process_revision_directives,
    )
    with context.begin_transaction():
        context.run_migrations()
"""
# A revision written by hand, without migrafix: a unique constraint with no name.
UNSAFE = '''\
"""unique names

Revision ID: 9f00a1b2c3d4
Revises: {down}
"""
from alembic import op
import sqlalchemy as sa

revision = "9f00a1b2c3d4"
down_revision = "{down}"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("customer") as batch_op:
        batch_op.create_unique_constraint(None, ["full_name"])


def downgrade():
    with op.batch_alter_table("customer") as batch_op:
        batch_op.drop_constraint(None, type_="unique")
'''


def run(*command: str, cwd: Path, expect: int = 0) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(BIN / command[0]), *command[1:]], cwd=cwd, env=ENV,
                          capture_output=True, text=True, check=False, timeout=300)
    if done.returncode != expect:
        raise SystemExit(f"{' '.join(command)}: exit {done.returncode}, expected {expect}\n"
                         f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}")
    return done


def check(condition: bool, message: str) -> None:
    if not condition:
        raise SystemExit(f"wheel smoke test: {message}")
    print(f"ok: {message}")


def check_distributions(dist: Path) -> None:
    version = migrafix.__version__
    (sdist,) = dist.glob(f"migrafix-{version}.tar.gz")
    (wheel,) = dist.glob(f"migrafix-{version}-py3-none-any.whl")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    for name in ("LICENSE", "README.md", "pyproject.toml", "src/migrafix/py.typed",
                 "src/migrafix/cli.py"):
        check(name in names, f"the sdist has {name}")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read(f"migrafix-{version}.dist-info/METADATA").decode()
    check("migrafix/py.typed" in names, "the wheel has py.typed")
    check(f"migrafix-{version}.dist-info/licenses/LICENSE" in names, "the wheel has LICENSE")
    check(not any(name.startswith(("tests/", "fixtures/")) for name in names),
          "the wheel has no tests or fixtures")
    check(f"\nVersion: {version}\n" in metadata and "\nLicense-Expression: MIT\n" in metadata,
          f"the wheel's metadata says version {version}, licence MIT")


def check_installed() -> None:
    where = Path(migrafix.__file__).resolve()
    check("site-packages" in where.parts, f"migrafix is imported from the wheel ({where})")
    check(importlib.metadata.version("migrafix") == migrafix.__version__,
          "the installed metadata's version is migrafix.__version__")
    done = run("migrafix", "--version", cwd=Path.cwd())
    check(done.stdout == f"migrafix {migrafix.__version__}\n",
          f"migrafix --version: {done.stdout!r}")
    done = run("migrafix", "rules", cwd=Path.cwd())
    from migrafix.rules import ALL_RULES  # the installed registry: one line per rule

    listed = [line.split()[0] for line in done.stdout.splitlines() if line.strip()]
    check(listed == [rule.name for rule in ALL_RULES],
          f"migrafix rules lists the {len(ALL_RULES)} rules of the registry: {listed}")


def check_project(root: Path) -> None:
    ENV["MIGRAFIX_CACHE_DIR"] = str(root / "cache")  # not the user's result cache
    run("alembic", "init", "migrations", cwd=root)
    ini = root / "alembic.ini"
    text, count = re.subn(r"^sqlalchemy\.url = .*$", f"sqlalchemy.url = sqlite:///{root}/app.db",
                          ini.read_text(), flags=re.MULTILINE)
    check(count == 1, "alembic init wrote an alembic.ini with sqlalchemy.url")
    ini.write_text(text)
    (root / "migrations" / "env.py").write_text(ENV_PY)
    versions = root / "migrations" / "versions"

    (root / "models.py").write_text(MODELS_V1)
    run("alembic", "revision", "--autogenerate", "-m", "v1", "--rev-id", "0001", cwd=root)
    run("alembic", "upgrade", "head", cwd=root)
    with sqlite3.connect(root / "app.db") as db:
        db.execute("INSERT INTO customer (id, name) VALUES (1, 'Ada'), (2, 'Grace')")

    (root / "models.py").write_text(MODELS_V2)
    run("alembic", "revision", "--autogenerate", "-m", "v2", "--rev-id", "0002", cwd=root)
    (written,) = versions.glob("0002_*.py")
    revision = written.read_text()
    check("new_column_name='full_name'" in revision, "the hook wrote the rename")
    check("server_default=sa.text(\"'active'\"), nullable=False" in revision
          and "server_default=None" in revision,
          "the hook wrote the backfill (the constant as a server default, dropped after)")
    check(revision.count("batch_op.f('fk_customer_invoice_id_invoice')") == 2,
          "the hook named the foreign key, upgrade and downgrade")
    check("migrafix" not in revision.replace("# migrafix", ""),
          "the revision does not import migrafix")

    for command in (("upgrade", "head"), ("downgrade", "0001"), ("upgrade", "head")):
        run("alembic", *command, cwd=root)
    with sqlite3.connect(root / "app.db") as db:
        rows = db.execute("SELECT id, full_name, status FROM customer ORDER BY id").fetchall()
    check(rows == [(1, "Ada", "active"), (2, "Grace", "active")],
          f"rows kept through upgrade, downgrade, upgrade: {rows}")

    # Not a git checkout: say these revisions are new, or check takes them for released and
    # says so on stderr.
    done = run("migrafix", "check", "--naming", "convention", "migrations/versions", cwd=root)
    check((done.stdout, done.stderr) == ("", ""), "migrafix check: the hook's revisions are clean")

    unsafe = versions / "9f00a1b2c3d4_unique_names.py"
    unsafe.write_text(UNSAFE.format(down="0002"))
    done = run("migrafix", "check", "--naming", "convention", "migrations/versions", cwd=root,
               expect=1)
    first, _ = done.stdout.splitlines()  # upgrade and downgrade
    line = 1 + UNSAFE.splitlines().index(
        '        batch_op.create_unique_constraint(None, ["full_name"])')
    check(first.startswith(f"migrations/versions/{unsafe.name}:{line}:9: unnamed-constraint ")
          and first.endswith(" [fixable]"), f"migrafix check reports: {first}")
    done = run("migrafix", "check", "--naming", "convention", "--format", "sarif",
               "migrations/versions", cwd=root, expect=1)
    log = json.loads(done.stdout)
    check(log["version"] == "2.1.0" and len(log["runs"][0]["results"]) == 2,
          "migrafix check --format sarif")
    done = run("migrafix", "rewrite", "--naming", "convention", "migrations/versions", cwd=root,
               expect=1)
    check(done.stderr == f"Rewriting migrations/versions/{unsafe.name}\n", "migrafix rewrite")
    check(unsafe.read_text().count('batch_op.f("uq_customer_full_name")') == 2,
          "migrafix rewrite named the constraint, upgrade and downgrade")
    run("migrafix", "check", "--naming", "convention", "migrations/versions", cwd=root)
    run("alembic", "upgrade", "head", cwd=root)
    run("alembic", "downgrade", "0002", cwd=root)
    print("ok: the rewritten revision upgrades and downgrades")


def main() -> int:
    check_distributions(Path(sys.argv[1]))
    check_installed()
    with tempfile.TemporaryDirectory() as tmp:
        check_project(Path(tmp))
    print("wheel smoke test passed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
