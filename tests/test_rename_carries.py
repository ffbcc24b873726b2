"""A rename keeps what the database carries over it: the indexes, unique constraints and
foreign keys over a renamed column or table are neither dropped nor built again (an index
build or a foreign key's scan, under a lock that stops writes). Where the model's name for
one differs (a convention name holding the column's or table's), it is renamed. Proven on
real PostgreSQL and MariaDB: the database equals the models afterwards, rows kept through
upgrade -> downgrade -> upgrade."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from harness import AlembicProject

CONVENTION = """\
import sqlalchemy as sa

metadata = sa.MetaData(naming_convention={
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
})
"""
V1 = CONVENTION + """
invoice = sa.Table(
    "invoice", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("code", sa.String(10), unique=True),
)
user = sa.Table(
    "user", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("email", sa.String(100), unique=True),
    sa.Column("nick", sa.String(10), index=True),
    sa.Column("inv", sa.Integer, sa.ForeignKey("invoice.id")),
    sa.Column("inv_code", sa.String(10), sa.ForeignKey("invoice.code")),
)
client = sa.Table(
    "client", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("email", sa.String(100), unique=True),
    sa.Column("nick", sa.String(10), index=True),
    sa.Column("inv", sa.Integer, sa.ForeignKey("invoice.id")),
    sa.Index("plain_name", "inv"),
)
note = sa.Table(
    "note", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("client_id", sa.Integer, sa.ForeignKey("client.id")),
)
"""
V2 = CONVENTION + """
invoice = sa.Table(
    "invoice", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("ref", sa.String(10), unique=True, info={"renamed_from": "code"}),
)
user = sa.Table(
    "user", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("email_address", sa.String(100), unique=True, info={"renamed_from": "email"}),
    sa.Column("handle", sa.String(10), index=True, info={"renamed_from": "nick"}),
    sa.Column("invoice_id", sa.Integer, sa.ForeignKey("invoice.id"),
              info={"renamed_from": "inv"}),
    sa.Column("inv_code", sa.String(10), sa.ForeignKey("invoice.ref")),
)
customer = sa.Table(
    "customer", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("email", sa.String(100), unique=True),
    sa.Column("nick", sa.String(10), index=True),
    sa.Column("inv", sa.Integer, sa.ForeignKey("invoice.id")),
    sa.Index("plain_name", "inv"),
    info={"renamed_from": "client"},
)
note = sa.Table(
    "note", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("client_id", sa.Integer, sa.ForeignKey("customer.id")),
)
"""
SEED = (
    "INSERT INTO invoice (id, code) VALUES (1, 'A'), (2, 'B')",
    "INSERT INTO {user} (id, email, nick, inv, inv_code) VALUES "
    "(1, 'ada@x', 'ada', 1, 'A'), (2, 'bob@x', 'bob', 2, 'B')",
    "INSERT INTO client (id, email, nick, inv) VALUES (1, 'c@x', 'c', 1)",
    "INSERT INTO note (id, client_id) VALUES (1, 1)",
)
READ_V1 = ("SELECT u.id, u.email, u.nick, i.code, c.email, n.id FROM {user} u "
           "JOIN invoice i ON i.id = u.inv JOIN client c ON c.inv = u.inv "
           "JOIN note n ON n.client_id = c.id ORDER BY u.id")
READ_V2 = ("SELECT u.id, u.email_address, u.handle, i.ref, c.email, n.id FROM {user} u "
           "JOIN invoice i ON i.id = u.invoice_id JOIN customer c ON c.inv = u.invoice_id "
           "JOIN note n ON n.client_id = c.id ORDER BY u.id")
ROWS = [(1, "ada@x", "ada", "A", "c@x", 1)]

# What would rebuild an index, a unique constraint or a foreign key, or scan for one.
REBUILDS = re.compile(r"op\.(create_index|create_unique_constraint|create_foreign_key|"
                      r"drop_index|drop_constraint)\(")


@pytest.mark.parametrize("database", [
    pytest.param("pg_url", marks=pytest.mark.postgres),
    pytest.param("mysql_url", marks=pytest.mark.mysql),
])
def test_renames_keep_their_indexes_and_constraints(
    database: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue(database)
    project = AlembicProject(tmp_path, url)
    user = '"user"' if database == "pg_url" else "`user`"
    project.write_models(V1)
    project.revision("v1")
    project.alembic("upgrade", "head")
    for statement in SEED:
        project.execute(statement.format(user=user))
    project.write_models(V2)
    [revision] = project.revision("v2", x=["rename=client:customer"])

    text = revision.read_text()
    upgrade, _, downgrade = text.partition("def downgrade")
    if database == "pg_url":
        # every one carried over or renamed: nothing rebuilt, in either direction
        assert REBUILDS.findall(text) == [], text
        assert "ALTER INDEX ix_user_nick RENAME TO ix_user_handle" in upgrade
        assert ('ALTER TABLE "user" RENAME CONSTRAINT fk_user_inv_invoice TO '
                "fk_user_invoice_id_invoice") in upgrade
        assert ("ALTER TABLE customer RENAME CONSTRAINT uq_client_email TO uq_customer_email"
                in upgrade)
        assert ("ALTER TABLE note RENAME CONSTRAINT fk_note_client_id_customer TO "
                "fk_note_client_id_client") in downgrade
    else:
        # MySQL renames indexes (a unique constraint is one), never a foreign key: those
        # whose name changes are rebuilt as autogenerate wrote them
        assert "RENAME INDEX ix_user_nick TO ix_user_handle" in upgrade
        assert "RENAME INDEX uq_user_email TO uq_user_email_address" in upgrade
        assert sorted(set(REBUILDS.findall(upgrade))) == ["create_foreign_key",
                                                          "drop_constraint"]

    project.alembic("upgrade", "head")
    assert project.diffs() == []
    assert project.rows(READ_V2.format(user=user)) == ROWS
    project.alembic("downgrade", "0001")
    project.write_models(V1)
    assert project.diffs() == []
    assert project.rows(READ_V1.format(user=user)) == ROWS
    project.write_models(V2)
    project.alembic("upgrade", "head")
    assert project.diffs() == []
    assert project.rows(READ_V2.format(user=user)) == ROWS
