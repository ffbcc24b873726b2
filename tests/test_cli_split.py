"""`migrafix rewrite` creating `<rev>_pre` / `<rev>_post` beside a revision file, as the user
sees it: what each mode prints and exits with, reruns, the cache, and where it does not split
(a file in the way, a released revision, a revision already following, standard input)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from test_cli import project, run, run_process  # noqa: F401  (project is a fixture)

from migrafix.codemod import runner

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "codemod"
CASE = FIXTURES / "concurrent_drop_and_backfill"
SETTINGS = """\
[tool.migrafix]
backfill = { "line.total" = "price * quantity" }
metadata = "models:metadata"
"""
MODELS = """\
import sqlalchemy as sa

metadata = sa.MetaData()
line = sa.Table("line", metadata, sa.Column("id", sa.Integer, primary_key=True))
"""
MAIN = "migrations/versions/0002_total.py"
PRE = "migrations/versions/0002_pre_total.py"
POST = "migrations/versions/0002_post_total.py"


@pytest.fixture
def split_project(project: Path) -> Path:  # noqa: F811
    """A project (new to git: --naming auto takes it for unreleased) with the fixture's
    revision, whose autocommit work splits into 0002_pre and 0002_post."""
    (project / "pyproject.toml").write_text(SETTINGS)
    (project / "models.py").write_text(MODELS)
    shutil.copy(CASE / "before.py", project / MAIN)
    return project


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes()
            for p in sorted((root / "migrations" / "versions").iterdir())}


def expected() -> dict[str, bytes]:
    return {MAIN: (CASE / "after.py").read_bytes(), POST: (CASE / "after_post.py").read_bytes(),
            PRE: (CASE / "after_pre.py").read_bytes()}


def test_rewrite_creates_the_parts_and_says_so(split_project: Path) -> None:
    # In a process of its own: the models module is imported by name.
    result = run_process("rewrite", "migrations", cwd=split_project)
    assert result.returncode == 1
    assert result.stderr.decode().splitlines() == [
        f"Rewriting {MAIN}",
        f"Created {PRE} (revision 0002_pre, before 0002: its autocommit work, in a revision "
        "of its own)",
        f"Created {POST} (revision 0002_post, after 0002: its autocommit work, in a revision "
        "of its own)",
    ]
    assert files(split_project) == expected()
    again = run_process("rewrite", "migrations", cwd=split_project)
    assert (again.returncode, again.stderr) == (0, b"")
    assert files(split_project) == expected()
    checked = run_process("check", "migrations", cwd=split_project)
    assert (checked.returncode, checked.stdout) == (0, b"")


def test_check_mode_names_the_files_it_would_create_and_writes_nothing(
    split_project: Path,
) -> None:
    before = files(split_project)
    result = run_process("rewrite", "--check", "migrations", cwd=split_project)
    assert result.returncode == 1
    assert result.stderr.decode().splitlines() == [
        f"Would rewrite {MAIN}",
        f"Would create {PRE} (revision 0002_pre, before 0002: its autocommit work, in a "
        "revision of its own)",
        f"Would create {POST} (revision 0002_post, after 0002: its autocommit work, in a "
        "revision of its own)",
    ]
    assert files(split_project) == before


def test_diff_shows_the_new_files_from_dev_null_and_patch_applies_it(
    split_project: Path,
) -> None:
    before = files(split_project)
    result = run_process("rewrite", "--diff", "migrations", cwd=split_project)
    assert result.returncode == 1
    diff = result.stdout.decode()
    lines = len((CASE / "after_pre.py").read_text().splitlines())
    assert f"--- /dev/null\n+++ {PRE}\n@@ -0,0 +1,{lines} @@\n" in diff
    assert f"--- /dev/null\n+++ {POST}\n" in diff
    assert files(split_project) == before
    subprocess.run(["patch", "-p0", "--quiet"], input=result.stdout, cwd=split_project,
                   check=True)
    assert files(split_project) == expected()


def test_the_cache_replays_the_split(
    split_project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.syspath_prepend(str(split_project))  # `metadata = "models:metadata"`
    assert run(capsys, "rewrite", "migrations")[0] == 1
    written = files(split_project)
    for name in (PRE, POST):
        (split_project / name).unlink()
    shutil.copy(CASE / "before.py", split_project / MAIN)

    def no_fix(work: object) -> object:
        raise AssertionError("the cache should have answered")

    monkeypatch.setattr(runner, "fix_file", no_fix)
    code, _, err = run(capsys, "rewrite", "migrations")
    assert code == 1 and f"Created {POST}" in err
    assert files(split_project) == written


def test_parallel_jobs_write_the_same_files(split_project: Path) -> None:
    shutil.copy(CASE / "before.py", split_project / "migrations" / "versions" / "0003_b.py")
    other = split_project / "migrations" / "versions" / "0003_b.py"
    other.write_text(other.read_text().replace("'0002'", "'0003'").replace("'0001'", "'0002'"))
    result = run_process("rewrite", "-j", "2", "--no-cache", "migrations", cwd=split_project)
    assert result.returncode == 1, result.stderr
    # 0002 now has a child, 0003: it stays whole; 0003 is split
    written = files(split_project)
    assert sorted(written) == [MAIN, "migrations/versions/0003_b.py",
                               "migrations/versions/0003_post_b.py",
                               "migrations/versions/0003_pre_b.py"]
    assert b"split-revision" in result.stderr and b"0003 (0003_b.py) already follows 0002" \
        in result.stderr


def test_an_interrupted_run_is_finished_by_the_next(split_project: Path) -> None:
    """The new files are written first: a run stopped before the file itself leaves them,
    and the next run keeps them (the same bytes) and writes the file."""
    for name, data in expected().items():
        if name != MAIN:
            (split_project / name).write_bytes(data)
    result = run_process("rewrite", "migrations", cwd=split_project)
    assert result.returncode == 1, result.stderr
    assert files(split_project) == expected()


def test_a_file_in_the_way_is_an_error_and_nothing_is_written(split_project: Path) -> None:
    (split_project / POST).write_text("# my own notes\n")
    before = files(split_project)
    for args in (("rewrite",), ("rewrite", "--check"), ("rewrite", "--diff")):
        result = run_process(*args, "migrations", cwd=split_project)
        assert result.returncode == 2
        assert (f"{MAIN}: error: cannot split off its autocommit work: {POST} is in the way "
                "of 0002_post, split off from it: nothing was written; move that file away (or "
                "delete it if it is an earlier split's) and rerun") in result.stderr.decode()
        assert files(split_project) == before


def test_a_revision_with_the_part_s_id_elsewhere_is_in_the_way(split_project: Path) -> None:
    elsewhere = split_project / "migrations" / "versions" / "0002_post_by_hand.py"
    elsewhere.write_text("revision = '0002_post'\ndown_revision = '0002'\n\n"
                         "def upgrade():\n    pass\n")
    before = files(split_project)
    result = run_process("rewrite", "migrations", cwd=split_project)
    assert result.returncode == 2
    assert ("revision 0002_post, which would be split off from it, is already in "
            "migrations/versions/0002_post_by_hand.py: nothing was written") \
        in result.stderr.decode()
    assert files(split_project) == before


def test_a_revision_already_following_keeps_it_one_revision(split_project: Path) -> None:
    child = split_project / "migrations" / "versions" / "0003_next.py"
    child.write_text("revision = '0003'\ndown_revision = '0002'\n\ndef upgrade():\n    pass\n")
    checked = run_process("check", "migrations", cwd=split_project)
    note = (f"{MAIN}:1:1: split-revision its autocommit work stays in this revision, in the "
            "form that is safe in one, not split off into 0002_pre and 0002_post as for a "
            "revision that has not run, because revision 0003 (0003_next.py) already follows "
            "0002 (to have it split, point that file's down_revision at 0002_post before "
            "`migrafix rewrite` writes this one) [note]")
    assert note in checked.stdout.decode().splitlines()
    # the one-transaction form, and the autocommit block's hazard, reported
    assert b"split into add nullable / backfill / set NOT NULL" in checked.stdout
    result = run_process("rewrite", "migrations", cwd=split_project)
    assert result.returncode == 1
    assert note in result.stderr.decode().splitlines()
    assert sorted(files(split_project)) == [MAIN, "migrations/versions/0003_next.py"]
    assert "autocommit_block" in (split_project / MAIN).read_text()


def test_a_released_revision_is_not_split(split_project: Path) -> None:
    result = run_process("rewrite", "--naming", "database", "migrations", cwd=split_project)
    assert result.returncode == 1
    assert sorted(files(split_project)) == [MAIN]
    assert b"Created" not in result.stderr and b"split-revision" not in result.stderr


def test_standard_input_is_not_split_and_a_note_says_why(split_project: Path) -> None:
    source = (CASE / "before.py").read_bytes()
    result = run_process("rewrite", "--naming", "convention", "-", cwd=split_project,
                         stdin=source)
    assert result.returncode == 1
    assert b"with op.get_context().autocommit_block():" in result.stdout
    assert (b"-:1:1: split-revision its autocommit work stays in this revision, in the form "
            b"that is safe in one, not split off into 0002_pre and 0002_post as for a revision "
            b"that has not run, because it is read from standard input, with no folder to "
            b"write them to [note]") in result.stderr
    assert sorted(files(split_project)) == [MAIN]


def test_the_orphan_scan_reads_only_the_files_the_run_did_not(
    project: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """`check` tells a split-off part whose main revision is gone from the ids the run read;
    a folder's other files are read (for their id) only when they were not checked."""
    from migrafix.codemod import split_parts

    versions = project / "migrations" / "versions"
    (versions / "0001_a.py").write_text("revision = '0001'\ndown_revision = None\n\n"
                                        "def upgrade():\n    pass\n")
    (versions / "0002_post_b.py").write_text("revision = '0002_post'\ndown_revision = '0002'\n\n"
                                             "def upgrade():\n    pass\n")
    read: list[str] = []
    real_read = split_parts._read

    def counted(path: Path) -> bytes | None:
        read.append(path.name)
        return real_read(path)

    monkeypatch.setattr(split_parts, "_read", counted)
    code, out, _ = run(capsys, "check", "migrations")
    assert code == 1 and "revision 0002_post is the post part of revision 0002" in out
    assert read == []  # every file of the folder was checked: its id came from the run
    code, out, _ = run(capsys, "check", "migrations/versions/0001_a.py")
    assert code == 1 and "migrations/versions/0002_post_b.py:1:1: split-revision" in out
    assert read == ["0002_post_b.py"]


def test_a_pre_part_alone_is_split_off_whatever_follows(split_project: Path) -> None:
    """`<rev>_pre` goes between the revision and the one before it: a revision that already
    follows this one still does."""
    main = split_project / MAIN
    text = main.read_text()
    for line in ("    op.create_index('ix_line_total', 'line', ['total'], unique=False, "
                 "postgresql_concurrently=True)  # for reports\n",
                 "    op.drop_index('ix_line_total', table_name='line', "
                 "postgresql_concurrently=True)\n"):
        text = text.replace(line, "")
    main.write_text(text.replace("nullable=False", "nullable=True"))
    child = split_project / "migrations" / "versions" / "0003_next.py"
    child.write_text("revision = '0003'\ndown_revision = '0002'\n\ndef upgrade():\n    pass\n")
    result = run_process("rewrite", "migrations", cwd=split_project)
    assert result.returncode == 1, result.stderr
    assert sorted(files(split_project)) == [PRE, MAIN, "migrations/versions/0003_next.py"]
    assert "down_revision: Union[str, Sequence[str], None] = '0002_pre'" in main.read_text()
    assert child.read_text().startswith("revision = '0003'\ndown_revision = '0002'\n")


INDEXES_WITH_A_GUARDED_DOWNGRADE = """\
revision = '0002'
down_revision = '0001'

from alembic import op


def upgrade():
    op.drop_index('ix_line_price', table_name='line')
    op.create_index('ix_line_total', 'line', ['total'], unique=False)


def downgrade():
    op.execute('DROP INDEX IF EXISTS ix_line_total')
    op.create_index('ix_line_price', 'line', ['price'], unique=False)
"""


def test_a_revision_kept_whole_is_left_as_it_is_by_the_next_run(project: Path) -> None:  # noqa: F811
    """Found in prefect's history: the upgrade's index ops alone, the downgrade's among other
    statements; a revision follows it, so it is kept whole. Made concurrent in the upgrade
    only, the next run found the downgrade's build alone to split off (into a `<rev>_pre`,
    which a following revision does not stop): both are left as written, with notes."""
    versions = project / "migrations" / "versions"
    (versions / "0002_indexes.py").write_text(INDEXES_WITH_A_GUARDED_DOWNGRADE)
    (versions / "0003_next.py").write_text(
        "revision = '0003'\ndown_revision = '0002'\n\ndef upgrade():\n    pass\n")
    first = run_process("rewrite", "migrations", cwd=project)
    assert b"0003 (0003_next.py) already follows 0002" in first.stderr, first.stderr
    again = run_process("rewrite", "migrations", cwd=project)
    assert (again.returncode, b"Rewriting" in again.stderr) == (0, False), again.stderr
    assert sorted(p.name for p in versions.iterdir()) == ["0002_indexes.py", "0003_next.py"]
