"""migrafix without touching env.py: Alembic's post_write_hooks run `migrafix rewrite` on every
new revision file, as README.md documents."""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import AlembicProject
from scenarios import FOREIGN_KEY

POST_WRITE_HOOKS = """
[post_write_hooks]
hooks = migrafix
migrafix.type = console_scripts
migrafix.entrypoint = migrafix
migrafix.options = rewrite --naming convention REVISION_SCRIPT_FILENAME
"""


@pytest.mark.postgres
def test_post_write_hook_rewrites_each_new_revision(tmp_path: Path, pg_url: str) -> None:
    project = AlembicProject(tmp_path, pg_url, hook=None)  # env.py knows nothing of migrafix
    project.ini.write_text(project.ini.read_text() + POST_WRITE_HOOKS)
    project.write_models(FOREIGN_KEY.v1)
    project.revision("v1")
    project.alembic("upgrade", "head")
    for statement in FOREIGN_KEY.seed:
        project.execute(statement)
    project.write_models(FOREIGN_KEY.v2)
    # rewrite splits the VALIDATE of the foreign key off, as the hook does
    [post, path] = project.revision("v2")

    text = path.read_text()
    assert "VALIDATE CONSTRAINT fk_order_invoice_id_invoice" in post.read_text()
    assert "op.create_foreign_key(op.f('fk_order_invoice_id_invoice'), 'order'" in text
    assert "postgresql_not_valid=True" in text
    assert "op.drop_constraint(op.f('fk_order_invoice_id_invoice'), 'order'" in text
    assert "Running post write hook 'migrafix'" in project.last.stdout + project.last.stderr
    project.alembic("upgrade", "head")
    project.alembic("downgrade", "0001")  # dies on drop_constraint(None) without migrafix
    project.alembic("upgrade", "head")
    assert project.rows(FOREIGN_KEY.query_after) == FOREIGN_KEY.expected_after
    assert project.diffs() == []
