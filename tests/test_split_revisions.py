"""The revisions the hook splits off, as a user lives with them: undoing them all at once, and
regenerating a revision whose parts were left behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from test_hook_behaviour import columns, current, models, started
from test_not_null_online import LINE_V1, LINE_V2, SEED


def check(project_root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "migrafix.cli", "check", "versions"],
                          cwd=project_root, capture_output=True, text=True, timeout=120)


@pytest.mark.postgres
def test_split_parts_are_undone_together_and_regenerated_together(
    tmp_path: Path, pg_url: str
) -> None:
    project = started(tmp_path, pg_url, LINE_V1, seed=SEED)
    project.write_models(models(LINE_V2))
    post, main = project.revision("v2", x=["backfill=line.total=price * qty"])
    assert (post.name, main.name) == ("0002_post_v2_backfill_line_total.py", "0002_v2.py")
    # The console says what the split means for downgrading and regenerating.
    assert ("this revision is written as 0002, 0002_post (autocommit work in revisions of its "
            "own): `alembic downgrade 0002-1` undoes them all; to regenerate it, delete all of "
            "them") in project.last.stderr

    project.alembic("upgrade", "head")
    project.alembic("downgrade", "-1")
    assert current(project) == ["0002"]  # -1 undoes only the last part
    project.alembic("upgrade", "head")
    project.alembic("downgrade", "0002-1")
    assert current(project) == ["0001"]
    assert columns(project, "line") == ["id", "price", "qty"]

    # Deleting only the main file breaks the history: Alembic's own error, then migrafix's.
    main.unlink()
    broken = project.alembic("revision", "--autogenerate", "-m", "again", check=False)
    assert broken.returncode != 0 and "KeyError: '0002'" in broken.stderr
    report = check(project.root)
    assert report.returncode == 1
    assert (f"versions/{post.name}:1:1: split-revision revision 0002_post is the post part of "
            "revision 0002") in report.stdout
    assert f"delete this file too (rm versions/{post.name})" in report.stdout
    assert "[fix by hand]" in report.stdout

    post.unlink()  # as told
    assert check(project.root).returncode == 0
    [_] = project.revision("again", rev_id="0002",
                               x=["backfill=line.total=price * qty",
                                  "migrafix.split_concurrent_revisions=false"])
    project.alembic("upgrade", "head")
    assert current(project) == ["0002"]
    assert project.rows("SELECT count(*) FROM line WHERE total IS NOT NULL") == [(4,)]
