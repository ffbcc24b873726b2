"""Which form not-null-add writes for a backfill, dialect by dialect, as `migrafix rewrite` writes
it into a revision file: a constant becomes the column's server default (no UPDATE); anything
else an UPDATE. The real databases accepting each form are in test_not_null_online.py and the
golden scenarios."""

from __future__ import annotations

import pytest

from migrafix.codemod import Options, fix_source
from migrafix.settings import Settings

REVISION = """\
from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"


def upgrade():
    op.add_column("order", sa.Column("value", {type}, nullable=False))


def downgrade():
    op.drop_column("order", "value")
"""

DEFAULT, UPDATE = "server default", "UPDATE"


def form(backfill: str, dialect: str, type_: str = "sa.String(length=20)") -> str:
    settings = Settings().merged({"backfill": {"order.value": backfill}}, "test")
    fixed = fix_source(REVISION.format(type=type_), Options(settings=settings, dialect=dialect))
    if "server_default=sa.text(" in fixed.source:
        assert "UPDATE" not in fixed.source
        return DEFAULT
    assert "op.execute(" in fixed.source and "UPDATE" in fixed.source, fixed.source
    return UPDATE


@pytest.mark.parametrize(("backfill", "expected"), [
    ("'placed'", DEFAULT),
    ("0", DEFAULT),
    ("-1.5", DEFAULT),
    ("TRUE", DEFAULT),
    ("'{}'::jsonb", DEFAULT),
    ("'x'::character varying", DEFAULT),
    ("now()", DEFAULT),
    ("CURRENT_TIMESTAMP", DEFAULT),
    ("current_date", DEFAULT),
    ("price * quantity", UPDATE),
    ("upper(name)", UPDATE),
    ("gen_random_uuid()", UPDATE),
    ("random()", UPDATE),
    ("clock_timestamp()", UPDATE),
    ("(SELECT max(id) FROM customer)", UPDATE),
    ("'a' || name", UPDATE),
])
def test_postgresql(backfill: str, expected: str) -> None:
    assert form(backfill, "postgresql") == expected


@pytest.mark.parametrize(("backfill", "dialect", "type_", "expected"), [
    ("'placed'", "sqlite", "sa.String(length=20)", DEFAULT),
    ("CURRENT_TIMESTAMP", "sqlite", "sa.DateTime()", UPDATE),  # not constant: ADD COLUMN refuses
    ("now()", "mysql", "sa.DateTime()", UPDATE),
    ("'placed'", "mysql", "sa.String(length=20)", DEFAULT),
    ("'placed'", "mysql", "sa.Text()", UPDATE),  # MySQL takes no literal DEFAULT on TEXT
    ("'{}'", "mysql", "sa.JSON()", UPDATE),
    ("'placed'", "mariadb", "sa.Text()", DEFAULT),  # MariaDB does
])
def test_other_dialects(backfill: str, dialect: str, type_: str, expected: str) -> None:
    assert form(backfill, dialect, type_) == expected
