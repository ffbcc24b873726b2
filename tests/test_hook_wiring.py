"""The hook in a real env.py: chained with other writers (they run first, migrafix last), and
interactive mode, which asks at a terminal and only at a terminal."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from harness import AlembicProject, body_lines

HEADER = "import sqlalchemy as sa\n\nmetadata = sa.MetaData()\n"
CUSTOMER_V1 = HEADER + """
customer = sa.Table(
    "customer", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(100)),
)
"""
# A NOT NULL column with a constant backfill: migrafix adds it with that server default (which
# stays on SQLite outside batch mode: SQLite alters a column only by copying the table).
WITH_AGE = CUSTOMER_V1.replace(
    'sa.String(100)),',
    'sa.String(100)),\n    sa.Column("age", sa.Integer, nullable=False, info={"backfill": 0}),',
)
SPLIT_AGE = [
    "op.add_column('customer', sa.Column('age', sa.Integer(), server_default=sa.text('0'), "
    "nullable=False))",
]
RENAMED = CUSTOMER_V1.replace('"name"', '"full_name"')
QUESTION = "Was customer.name renamed to customer.full_name (VARCHAR(100))? [y/N] "
LOOK_ALIKE = """\
    # migrafix: customer.name is dropped and customer.full_name added, both VARCHAR(100). If
    # this is a rename, the data is lost.
    # To write it as a rename, rerun autogenerate with
    #     -x rename=customer.name:full_name
    # or put info={'renamed_from': 'name'} on the column.
    op.add_column('customer', sa.Column('full_name', sa.String(length=100), nullable=True))
"""


def at_v1(tmp_path: Path, url: str, hook: str, hooks_py: str | None = None) -> AlembicProject:
    """A project whose database is at CUSTOMER_V1, its env.py using `hook`."""
    project = AlembicProject(tmp_path, url, hook=hook)
    if hooks_py is not None:
        (project.root / "hooks.py").write_text(hooks_py)
    project.write_models(CUSTOMER_V1)
    project.revision("v1")
    project.alembic("upgrade", "head")
    return project


# --- chaining -------------------------------------------------------------------------------

REWRITER_HOOKS = """
import migrafix
from alembic.autogenerate import rewriter
from alembic.operations import ops

rewrite = rewriter.Rewriter()


@rewrite.rewrites(ops.AddColumnOp)
def index_new_columns(context, revision, op):
    name = f"ix_{op.table_name}_{op.column.name}"
    return [op, ops.CreateIndexOp(name, op.table_name, [op.column.name])]


writer = rewrite.chain(migrafix.process_revision_directives)
"""


def test_rewriter_chained_before_migrafix(tmp_path: Path, sqlite_url: str) -> None:
    """Rewriter.chain(migrafix...): the rewriter's index and migrafix's NOT NULL split."""
    project = at_v1(tmp_path, sqlite_url, "hooks.writer", REWRITER_HOOKS)
    project.write_models(WITH_AGE)
    [path] = project.revision("v2")
    assert body_lines(path.read_text()) == [
        *SPLIT_AGE,
        "op.create_index('ix_customer_age', 'customer', ['age'], unique=False)",
    ]


CHAIN_HOOKS = """
import migrafix
from alembic.operations import ops


def retitle(context, revision, directives):
    directives[0].message = "retitled by hooks.py"


def add_unnamed_index(context, revision, directives):
    if directives[0].rev_id == "0002":  # v2 adds customer.age
        directives[0].upgrade_ops.ops.append(ops.CreateIndexOp(None, "customer", ["age"]))


writer = migrafix.chain(retitle, add_unnamed_index, migrafix.process_revision_directives)
"""


def test_chain_plain_functions_then_migrafix(tmp_path: Path, sqlite_url: str) -> None:
    """migrafix.chain runs in order: the message is changed, and migrafix, running last, both
    splits the NOT NULL add and names the index the other writer added without a name."""
    project = at_v1(tmp_path, sqlite_url, "hooks.writer", CHAIN_HOOKS)
    project.write_models(WITH_AGE)
    [path] = project.revision("v2")
    assert path.name == "0002_retitled_by_hooks_py.py"
    text = path.read_text()
    assert text.startswith('"""retitled by hooks.py\n')
    assert body_lines(text) == [
        *SPLIT_AGE,
        "op.create_index(op.f('ix_customer_age'), 'customer', ['age'], unique=False)",
    ]


# --- interactive ----------------------------------------------------------------------------

REVISION = ["revision", "--autogenerate", "-m", "v2", "--rev-id", "0002"]


def command(project: AlembicProject) -> list[str]:
    return [sys.executable, "-m", "alembic", "-c", str(project.ini), *REVISION]


def read_until(fd: int, wanted: str, deadline: float) -> str:
    """What the terminal shows until `wanted` appears, the child exits, or time runs out."""
    seen = b""
    while wanted.encode() not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    return seen.decode(errors="replace")


def revision_at_terminal(project: AlembicProject, answer: str) -> tuple[str, Path]:
    """Run autogenerate with stdin and stderr on a pseudo-terminal; answer the question."""
    master, slave = os.openpty()
    process = subprocess.Popen(command(project), cwd=project.root, stdin=slave,
                               stdout=subprocess.PIPE, stderr=slave, text=True)
    os.close(slave)
    try:
        shown = read_until(master, QUESTION, time.monotonic() + 60)
        assert QUESTION in shown, f"no question at the terminal; it showed:\n{shown}"
        os.write(master, answer.encode())
        shown += read_until(master, "\0never\0", time.monotonic() + 60)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)
    assert process.returncode == 0, shown
    [path] = project.versions.glob("0002_*.py")
    return shown, path


@pytest.mark.parametrize(
    ("hook", "pyproject"),
    [
        ("migrafix.process_revision_directives", "[tool.migrafix]\ninteractive = true\n"),
        ("migrafix.hook(interactive=True)", None),
    ],
    ids=["pyproject", "hook"],
)
def test_interactive_yes_renames(
    tmp_path: Path, sqlite_url: str, hook: str, pyproject: str | None
) -> None:
    project = at_v1(tmp_path, sqlite_url, hook)
    if pyproject is not None:
        (project.root / "pyproject.toml").write_text(pyproject)
    project.write_models(RENAMED)
    shown, path = revision_at_terminal(project, "y\n")
    assert shown.count("Was customer.") == 1
    assert body_lines(path.read_text()) == [
        "op.alter_column('customer', 'name',",
        "existing_type=sa.VARCHAR(length=100),",
        "new_column_name='full_name',",
        "existing_nullable=True)",
    ]


def test_interactive_no_keeps_drop_and_add(tmp_path: Path, sqlite_url: str) -> None:
    project = at_v1(tmp_path, sqlite_url, "migrafix.hook(interactive=True)")
    project.write_models(RENAMED)
    _, path = revision_at_terminal(project, "n\n")
    text = path.read_text()
    assert LOOK_ALIKE in text
    assert body_lines(text) == [
        "op.add_column('customer', sa.Column('full_name', sa.String(length=100), nullable=True))",
        "op.drop_column('customer', 'name')",
    ]


def test_interactive_without_terminal_asks_nothing(tmp_path: Path, sqlite_url: str) -> None:
    """CI, a pipe, a script: stdin is no terminal, so no question (nothing would answer it),
    and the look-alike pair is flagged in the revision instead."""
    project = at_v1(tmp_path, sqlite_url, "migrafix.process_revision_directives")
    (project.root / "pyproject.toml").write_text("[tool.migrafix]\ninteractive = true\n")
    project.write_models(RENAMED)
    result = subprocess.run(command(project), cwd=project.root, stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "renamed to" not in result.stderr + result.stdout
    [path] = project.versions.glob("0002_*.py")
    text = path.read_text()
    assert LOOK_ALIKE in text
    assert "op.drop_column('customer', 'name')" in body_lines(text)
