"""The model changes the hook is proven on, shared by the PostgreSQL, SQLite and MySQL tests.

Each scenario: models v1, rows to seed, models v2, and a query whose rows must survive the
upgrade (``after``) and, for the downgrade, the same data read with v1 names (``before``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

HEADER = "import sqlalchemy as sa\n\nmetadata = sa.MetaData()\n"


@dataclass(frozen=True)
class Scenario:
    name: str
    v1: str
    v2: str
    seed: tuple[str, ...]
    query_before: str  # reads the seeded data in the v1 schema
    query_after: str  # reads it in the v2 schema
    expected_after: list[tuple[object, ...]]
    x: tuple[str, ...] = ()
    expected_before: list[tuple[object, ...]] = field(default_factory=list)


RENAME = Scenario(
    name="rename_column",
    v1=HEADER + """
customer = sa.Table(
    "customer", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(100), nullable=False, server_default="anonymous",
              comment="shown on invoices"),
)
""",
    v2=HEADER + """
customer = sa.Table(
    "customer", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("full_name", sa.String(100), nullable=False, server_default="anonymous",
              comment="shown on invoices", info={"renamed_from": "name"}),
)
""",
    seed=("INSERT INTO customer (id, name) VALUES (1, 'Ada'), (2, 'Grace')",),
    query_before="SELECT id, name FROM customer ORDER BY id",
    query_after="SELECT id, full_name FROM customer ORDER BY id",
    expected_before=[(1, "Ada"), (2, "Grace")],
    expected_after=[(1, "Ada"), (2, "Grace")],
)

NOT_NULL = Scenario(
    name="not_null_add",
    v1=HEADER + """
order = sa.Table("order", metadata, sa.Column("id", sa.Integer, primary_key=True,
                                              autoincrement=False))
""",
    v2=HEADER + """
order = sa.Table(
    "order", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("status", sa.String(20), nullable=False, info={"backfill": "placed"}),
)
""",
    seed=('INSERT INTO "order" (id) VALUES (1), (2)',),
    query_before='SELECT id FROM "order" ORDER BY id',
    query_after='SELECT id, status FROM "order" ORDER BY id',
    expected_before=[(1,), (2,)],
    expected_after=[(1, "placed"), (2, "placed")],
)

# A backfill that reads other columns cannot be a DEFAULT: on PostgreSQL and MySQL it is filled
# in batches in a revision of its own (0002_post); on SQLite, between two batch blocks.
NOT_NULL_COMPUTED = Scenario(
    name="not_null_computed",
    v1=HEADER + """
line = sa.Table(
    "line", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("price", sa.Integer, nullable=False),
    sa.Column("quantity", sa.Integer, nullable=False),
)
""",
    v2=HEADER + """
line = sa.Table(
    "line", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("price", sa.Integer, nullable=False),
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("total", sa.Integer, nullable=False),
)
""",
    x=("backfill=line.total=price * quantity", "migrafix.backfill_batch_size=2"),
    seed=("INSERT INTO line (id, price, quantity) VALUES (1, 3, 2), (2, 5, 1), (4, 1, 1), "
          "(9, 2, 7), (10, 1, 0)",),
    query_before="SELECT id, price, quantity FROM line ORDER BY id",
    query_after="SELECT id, total FROM line ORDER BY id",
    expected_before=[(1, 3, 2), (2, 5, 1), (4, 1, 1), (9, 2, 7), (10, 1, 0)],
    expected_after=[(1, 6), (2, 5), (4, 1), (9, 14), (10, 0)],
)

FOREIGN_KEY = Scenario(
    name="unnamed_foreign_key",
    v1=HEADER + """
invoice = sa.Table("invoice", metadata, sa.Column("id", sa.Integer, primary_key=True,
                                                  autoincrement=False))
order = sa.Table("order", metadata, sa.Column("id", sa.Integer, primary_key=True,
                                              autoincrement=False))
""",
    v2=HEADER + """
invoice = sa.Table("invoice", metadata, sa.Column("id", sa.Integer, primary_key=True,
                                                  autoincrement=False))
order = sa.Table(
    "order", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("invoice_id", sa.Integer, sa.ForeignKey("invoice.id")),
)
""",
    seed=("INSERT INTO invoice (id) VALUES (10)", 'INSERT INTO "order" (id) VALUES (1), (2)'),
    query_before='SELECT id FROM "order" ORDER BY id',
    query_after='SELECT id, invoice_id FROM "order" ORDER BY id',
    expected_before=[(1,), (2,)],
    expected_after=[(1, None), (2, None)],
)

CONCURRENT_INDEX = Scenario(
    name="concurrent_index",
    v1=HEADER + """
event = sa.Table("event", metadata, sa.Column("id", sa.Integer, primary_key=True,
                                              autoincrement=False))
""",
    v2=HEADER + """
event = sa.Table(
    "event", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("kind", sa.String(20)),
    sa.Index("ix_event_kind", "kind", postgresql_concurrently=True),
)
""",
    seed=("INSERT INTO event (id) VALUES (1), (2)",),
    query_before="SELECT id FROM event ORDER BY id",
    query_after="SELECT id, kind FROM event ORDER BY id",
    expected_before=[(1,), (2,)],
    expected_after=[(1, None), (2, None)],
)

# An index the model does not mark concurrent, on a table that has rows: concurrent all the
# same on PostgreSQL (concurrent_indexes = "always", the default); the revision holds nothing
# else, so its autocommit block stays in it.
INDEX = Scenario(
    name="index",
    v1=HEADER + """
event = sa.Table(
    "event", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("kind", sa.String(20)),
)
""",
    v2=HEADER + """
event = sa.Table(
    "event", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("kind", sa.String(20)),
    sa.Index("ix_event_kind", "kind"),
)
""",
    seed=("INSERT INTO event (id, kind) VALUES (1, 'a'), (2, 'b'), (3, 'a')",),
    query_before="SELECT id, kind FROM event ORDER BY id",
    query_after="SELECT id, kind FROM event ORDER BY id",
    expected_before=[(1, "a"), (2, "b"), (3, "a")],
    expected_after=[(1, "a"), (2, "b"), (3, "a")],
)

# A column with values made unique, and a new one: on PostgreSQL the unique index is built
# CONCURRENTLY and the constraint added USING it, in a revision of its own (0002_post).
UNIQUE_CONSTRAINT = Scenario(
    name="unique_constraint",
    v1=HEADER + """
order = sa.Table(
    "order", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("code", sa.String(20)),
)
""",
    v2=HEADER + """
order = sa.Table(
    "order", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("code", sa.String(20), unique=True),
    sa.Column("note", sa.String(50)),
)
""",
    seed=("INSERT INTO \"order\" (id, code) VALUES (1, 'A-1'), (2, 'A-2'), (3, NULL)",),
    query_before='SELECT id, code FROM "order" ORDER BY id',
    query_after='SELECT id, code, note FROM "order" ORDER BY id',
    expected_before=[(1, "A-1"), (2, "A-2"), (3, None)],
    expected_after=[(1, "A-1", None), (2, "A-2", None), (3, None, None)],
)

ALL = (RENAME, NOT_NULL, NOT_NULL_COMPUTED, FOREIGN_KEY, CONCURRENT_INDEX, INDEX,
       UNIQUE_CONSTRAINT)


def quoted(sql: str, dialect: str) -> str:
    """The scenarios write PostgreSQL/SQLite quoting; MySQL quotes with backticks."""
    return sql.replace('"', "`") if dialect == "mysql" else sql
