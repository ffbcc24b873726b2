"""unnamed-constraint: constraints created or dropped with no name get the naming convention's."""

from __future__ import annotations

import copy
import functools
import hashlib
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from alembic.operations import ops
from sqlalchemy.sql.elements import conv, quoted_name

from migrafix.revision import Revision, derived
from migrafix.rules.base import Example, Finding, Rule, RuleContext, table_label

__all__ = [
    "DEFAULT_NAMING_CONVENTION",
    "DatabaseNaming",
    "NameLookup",
    "NamingConvention",
    "UnnamedConstraint",
    "pg_check_name",
    "same_item",
]

# Every column in the names of what a table may have several of on different columns (an
# index, a unique, a foreign key), and a hash of a check's SQL (check_stand_in): two of one
# table never share a name. Names past the dialect's limit are cut as SQLAlchemy cuts them.
DEFAULT_NAMING_CONVENTION: Mapping[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

_PREFIX_BY_CLASS: Mapping[type, str] = {
    sa.Index: "ix",
    sa.UniqueConstraint: "uq",
    sa.CheckConstraint: "ck",
    sa.ForeignKeyConstraint: "fk",
    sa.PrimaryKeyConstraint: "pk",
}

# The kind of what each of Alembic's ops creates, without building it.
_OP_KIND: Mapping[type, str] = {
    ops.CreateIndexOp: "ix",
    ops.CreateUniqueConstraintOp: "uq",
    ops.CreateCheckConstraintOp: "ck",
    ops.CreateForeignKeyOp: "fk",
    ops.CreatePrimaryKeyOp: "pk",
}


class NamingConvention:
    """Names exactly as SQLAlchemy gives them: the constraint's table is copied into a
    throwaway ``MetaData(naming_convention=...)`` and the name read back, then truncated the
    way the dialect's compiler truncates it.

    An op whose name takes only the table, column and referred table names it carries is
    named from those names, as SQLAlchemy's ``ConventionDict`` fills them: building the stub
    table Alembic attaches its constraint to, then copying it, costs ~0.6 ms an op, the most
    of the hook's time in a large autogenerate."""

    def __init__(self, convention: Mapping[Any, str], dialect: sa.engine.Dialect) -> None:
        self.convention = {_PREFIX_BY_CLASS.get(k, k): v for k, v in convention.items()}
        self.dialect = dialect
        self.reason = ""
        # A key that is a class (sa.Constraint) applies to its subclasses, by SQLAlchemy's
        # own lookup: such a convention is left to SQLAlchemy whole.
        self._keyed_by_kind = all(isinstance(key, str) for key in self.convention)

    def name_for_op(self, op: _CreatesItem) -> conv | None:
        """The name of the constraint or index ``op`` creates, or None if the convention
        cannot name it."""
        name = self._name_from_names(op)
        if name is None:  # a token, or an op, that needs SQLAlchemy's objects
            # Alembic's stub table of a standalone check has one made-up column, "x"
            table_known = not isinstance(op, ops.CreateCheckConstraintOp)
            return self.names_for([_item_of(op)], table_known)[0]
        # An empty name leaves the constraint unnamed, as SQLAlchemy leaves it.
        return self.truncated(name, is_index=False) if name else None

    def name_for(self, item: sa.Constraint | sa.Index) -> conv | None:
        """The name of ``item`` (attached to a table of ours), or None if the convention
        cannot name it (an expression index, a token the item cannot fill)."""
        return self.names_for([item])[0]

    def names_for(
        self, items: Sequence[sa.Constraint | sa.Index], table_known: bool = True
    ) -> list[conv | None]:
        """The names of ``items``, all attached to one table of ours, from one conventioned
        copy of it: copying a table costs more than all the rest of naming. ``table_known``
        False: the table is a stub, its columns are not the real table's."""
        if not items:
            return []
        table = items[0].table
        assert isinstance(table, sa.Table)
        lent: list[sa.CheckConstraint] = []
        if "%(constraint_name)s" in self.convention.get("ck", ""):
            # Every unnamed CHECK of the table needs its stand-in, or copying the table fails;
            # lent for the copy only, so the table is left as it was.
            lent = [c for c in table.constraints
                    if isinstance(c, sa.CheckConstraint) and c.name is None]
            for check in lent:
                check.name = check_stand_in(check, table if table_known else None)
        try:
            named = table.to_metadata(sa.MetaData(naming_convention=self.convention))
        except Exception:  # a convention token some item cannot fill
            return [None] * len(items)
        finally:
            for check in lent:
                check.name = None
        names: list[conv | None] = []
        for item in items:
            twin = _twin_in(named, item)
            ok = twin is not None and isinstance(twin.name, conv)
            names.append(self.truncated(twin.name, isinstance(item, sa.Index)) if ok else None)
        return names

    def truncated(self, name: str, is_index: bool) -> conv:
        preparer = self.dialect.identifier_preparer
        shorten = (preparer.truncate_and_render_index_name if is_index
                   else preparer.truncate_and_render_constraint_name)
        return conv(shorten(conv(name), _alembic_quote=False))

    def _name_from_names(self, op: _CreatesItem) -> str | None:
        """The convention's name for ``op``'s constraint, from the op's names alone; None when
        the op or a token needs the objects (``name_for_op`` then builds them)."""
        parts = _names_of(op) if self._keyed_by_kind else None
        if parts is None or not _by_token_names(self.convention.get(parts[0])):
            return None
        kind, table, columns, referred = parts
        try:
            if "pk" in self.convention:
                # Copying a table first names its implicit, empty primary key: where that
                # fails, SQLAlchemy names nothing.
                pk = self.convention["pk"]
                if not _by_token_names(pk):
                    return None
                pk % _NameTokens(self.convention, table, [], None)
            return self.convention[kind] % _NameTokens(self.convention, table, columns, referred)
        except Exception:  # a token taken from the objects, or failing there too: theirs to say
            return None


@functools.cache
def _by_token_names(template: str | None) -> bool:
    """Whether ``template`` only has ``%(token)`` directives: any other formats the token
    mapping itself (SQLAlchemy's object), which a name from names cannot repeat."""
    return isinstance(template, str) and "%" not in re.sub(r"%\(\w+\)|%%", "", template)


_CreatesItem = ops.AddConstraintOp | ops.CreateIndexOp


def _item_of(op: _CreatesItem) -> sa.Constraint | sa.Index:
    """The constraint or index ``op`` creates, on a stub table Alembic builds for it: ours."""
    if isinstance(op, ops.CreateIndexOp):
        index = op.to_index()
        if op.index_name is None:
            # Alembic's stub MetaData named it by SQLAlchemy's default convention: ours names it
            index.name = None
        return index
    return op.to_constraint()


# The ops named from their names alone, and the keyword arguments Alembic's stub constraint
# stores as they are: any other keyword (a dialect's) may make building the stub fail, which
# a name from the op's names would hide.
_PLAIN_KW: Mapping[type, frozenset[str]] = {
    ops.CreateForeignKeyOp: frozenset({"source_schema", "referent_schema", "onupdate",
                                       "ondelete", "deferrable", "initially", "match",
                                       "use_alter"}),
    ops.CreateUniqueConstraintOp: frozenset({"deferrable", "initially"}),
    ops.CreatePrimaryKeyOp: frozenset(),
}


def _names_of(op: _CreatesItem) -> tuple[str, str, list[str], str | None] | None:
    """(convention key, table, columns, referred table) of an op in ``_PLAIN_KW`` whose stub
    constraint would be built without fail; None for any other."""
    allowed = _PLAIN_KW.get(type(op))
    if allowed is None or not set(getattr(op, "kw", {})) <= allowed:
        return None
    referred: str | None = None
    if isinstance(op, ops.CreateForeignKeyOp):
        table, columns, remote = op.source_table, list(op.local_cols), list(op.remote_cols)
        if len(columns) != len(remote) or not _all_str(op.referent_table, *remote):
            return None
        referred = str(op.referent_table)  # the plain str SQLAlchemy reads from the target
        if "." in referred or "." in remote[0]:  # SQLAlchemy reads it back split at dots
            return None
    else:
        assert isinstance(op, (ops.CreateUniqueConstraintOp, ops.CreatePrimaryKeyOp))
        table, columns = op.table_name, list(op.columns)
    # A primary key of no columns is bound to no table; a stub table of duplicates fails.
    if not columns or not _all_str(table, *columns) or len(set(columns)) != len(columns):
        return None
    return _OP_KIND[type(op)], table, columns, referred


def _all_str(*names: object) -> bool:
    return all(isinstance(name, str) for name in names)


class _NameTokens:
    """The tokens SQLAlchemy's ``ConventionDict`` fills from names alone, valued as it values
    them; ``KeyError`` for any other (labels, keys, referred columns, ``constraint_name``, a
    token the project's convention defines)."""

    def __init__(
        self,
        convention: Mapping[str, str],
        table: str,
        columns: Sequence[str],
        referred: str | None,
    ) -> None:
        self.convention = convention
        # The str subclass SQLAlchemy's Table and Column hold, so that %r formats alike.
        self.table = quoted_name(table, None)
        self.columns = [quoted_name(c, None) for c in columns]
        self.referred = referred

    def __getitem__(self, key: str) -> str:
        if key in self.convention:  # to SQLAlchemy, a token the convention computes
            raise KeyError(key)
        if key == "table_name":
            return self.table
        if key == "referred_table_name" and self.referred is not None:
            return self.referred
        if key in ("column_0N_name", "column_0_N_name"):
            return ("_" if key == "column_0_N_name" else "").join(self.columns)
        single = re.fullmatch(r"column_(\d+)_name", key)
        if single is not None:
            index = int(single[1])
            return self.columns[index] if index < len(self.columns) else ""
        raise KeyError(key)


@dataclass(frozen=True)
class NameLookup:
    """The name a database chose for a constraint created without one, found when the
    revision runs, by the constraint's columns, with SQLAlchemy's inspector.

    PostgreSQL names a foreign key ``<table>_<columns>_fkey``, MySQL ``<table>_ibfk_<n>`` in
    creation order: a history that runs on both has one name per database, and only the
    database knows which. ``code`` is the plain Alembic and SQLAlchemy expression the codemod
    writes in the name's place (the revision imports nothing of migrafix)."""

    kind: Literal["primary", "foreignkey", "unique"]
    table: str
    schema: str | None
    columns: tuple[str, ...] = ()
    referred_table: str | None = None

    def code(self, op: str, sa: str) -> str:
        inspector = f"{sa}.inspect({op}.get_bind())"
        where = repr(str(self.table)) + (f", schema={str(self.schema)!r}" if self.schema else "")
        if self.kind == "primary":
            return f"{inspector}.get_pk_constraint({where})['name']"
        columns = repr([str(c) for c in self.columns])
        if self.kind == "foreignkey":
            return (f"next(fk['name'] for fk in {inspector}.get_foreign_keys({where}) "
                    f"if fk['constrained_columns'] == {columns} "
                    f"and fk['referred_table'] == {str(self.referred_table)!r})")
        return (f"next(uq['name'] for uq in {inspector}.get_unique_constraints({where}) "
                f"if uq['column_names'] == {columns})")


# SQLAlchemy's MetaData names an unnamed index by this when its convention has no "ix":
# every database that ran `op.create_index(None, ...)` got that name.
_SQLALCHEMY_INDEX_NAMING = {"ix": "ix_%(column_0_label)s"}


class DatabaseNaming:
    """The names to drop, in a revision that already ran, what it created with no name: the
    names every database that ran it holds. Its creates are left as they are (the database
    names them again, the same way, on a fresh build).

    - a kind the project's naming convention covers: Alembic named it by that convention at
      run time (target_metadata's), on every database alike; an index, by SQLAlchemy's own
      ``ix_%(column_0_label)s`` when the project's convention has no ``ix``;
    - a primary key, foreign key or unique constraint: the database chose (PostgreSQL
      ``<table>_<columns>_fkey``, MySQL ``<table>_ibfk_<n>``), so it is found at run time by
      its columns (``NameLookup``);
    - a CHECK: PostgreSQL's ``<table>_<column>_check`` when its SQL reads one column, else
      ``<table>_check``, as its ``ChooseConstraintName`` gives them (no database reports a
      check's SQL as it was written, so none can be found by it). MySQL and MariaDB number
      them by creation order: those cannot be known from the file.
    """

    def __init__(
        self, dialect: sa.engine.Dialect, project: NamingConvention | None = None
    ) -> None:
        self.dialect = dialect
        # At run time Alembic names an op's None constraint by target_metadata's convention:
        # for the kinds the project's convention covers, that is the name the database holds.
        self.project = project
        self.indexes = project if project is not None and "ix" in project.convention \
            else NamingConvention(_SQLALCHEMY_INDEX_NAMING, dialect)
        # PostgreSQL names of CHECKs that two creates of one revision would share: the second
        # got ``..._check1``, and which one is which cannot be told from the file.
        self.shared_check_names: set[tuple[str | None, str, str]] = set()
        self.reason = ""

    def name_for_drop(self, create: _CreatesItem) -> conv | NameLookup | None:
        """The name to drop what ``create`` made with no name, or None (``reason`` says why)."""
        kind = _OP_KIND.get(type(create))
        if self.project is not None and kind in self.project.convention:
            return self.project.name_for_op(create)
        if isinstance(create, ops.CreateIndexOp):
            return self.indexes.name_for_op(create)
        if isinstance(create, ops.CreatePrimaryKeyOp):
            return NameLookup("primary", create.table_name, create.schema)
        if isinstance(create, ops.CreateForeignKeyOp) and _all_str(create.referent_table):
            return NameLookup("foreignkey", create.source_table, create.kw.get("source_schema"),
                              tuple(create.local_cols), str(create.referent_table))
        if isinstance(create, ops.CreateUniqueConstraintOp):
            return NameLookup("unique", create.table_name, create.schema,
                              tuple(create.columns))
        if isinstance(create, ops.CreateCheckConstraintOp):
            return self._check_name(create)
        self.reason = "the constraint it drops cannot be read from its create"
        return None

    def _check_name(self, create: ops.CreateCheckConstraintOp) -> conv | None:
        if self.dialect.name in ("mysql", "mariadb"):
            self.reason = ("MySQL and MariaDB number unnamed checks by creation order "
                           "(<table>_chk_<n>, CONSTRAINT_<n>): the name cannot be known from "
                           "the file")
            return None
        if self.dialect.name != "postgresql":
            self.reason = f"{self.dialect.name} gives unnamed checks no name migrafix can know"
            return None
        name = pg_check_name(create.table_name, str(create.condition), None)
        if name is None:
            self.reason = "its SQL is not read well enough to tell the columns PostgreSQL counts"
            return None
        if (create.schema, create.table_name, name) in self.shared_check_names:
            self.reason = (f"PostgreSQL named two checks of this revision {name}, the second "
                           f"{name}1: which is which cannot be told from the file")
            return None
        return conv(name)


def pg_check_name(table: str, sqltext: str, columns: Collection[str] | None) -> str | None:
    """PostgreSQL's name for an unnamed CHECK of ``table``: ``<table>_<column>_check`` when
    its SQL reads one column, else ``<table>_check`` (before any number PostgreSQL adds to
    keep names unique). ``columns``: the table's, when known; else every identifier of the
    SQL that is not a function, a keyword or a type counts as a column. None if the SQL is
    not read (a dollar-quoted string)."""
    read = _identifiers_in(sqltext)
    if read is None:
        return None
    if columns is not None:
        known = set(columns)
        read = [word for word in read if word in known]
    return _pg_object_name(table, read[0] if len(read) == 1 else None, "check")


# Words of a CHECK's SQL that are not columns: operators, constants, type names.
_SQL_WORDS = frozenset({
    "all", "and", "any", "array", "as", "asymmetric", "between", "bigint", "boolean", "case",
    "cast", "char", "character", "collate", "current_date", "current_time",
    "current_timestamp", "current_user", "date", "day", "decimal", "default", "distinct",
    "double", "else", "end", "escape", "exists", "false", "float", "from", "hour", "ilike",
    "in", "int", "integer", "interval", "is", "isnull", "like", "localtime", "localtimestamp",
    "minute", "month", "not", "notnull", "null", "numeric", "or", "precision", "real",
    "second", "session_user", "similar", "smallint", "some", "symmetric", "text", "then",
    "time", "timestamp", "timestamptz", "to", "true", "unknown", "user", "varchar", "varying",
    "when", "with", "without", "year", "zone",
})


def _identifiers_in(sqltext: str) -> list[str] | None:
    """The distinct identifiers of ``sqltext`` that can be columns, in order, as PostgreSQL
    folds them (unquoted: lower case)."""
    if "$" in sqltext:
        return None
    text = re.sub(r"'(?:[^']|'')*'", " ", sqltext)  # string literals
    text = re.sub(r"::\s*(\w+\s*)+(\([\d\s,]*\))?(\[\])?", " ", text)  # casts
    text = re.sub(r"\b\d+(\.\d*)?([eE][+-]?\d+)?", " ", text)  # numbers
    found: list[str] = []
    for match in re.finditer(r'"((?:[^"]|"")+)"|([A-Za-z_][A-Za-z0-9_]*)(\s*\()?', text):
        quoted, bare, call = match.groups()
        if quoted is not None:
            word = quoted.replace('""', '"')
        elif call or bare.lower() in _SQL_WORDS:
            continue  # a function, or a word of SQL
        else:
            word = bare.lower()
        if word not in found:
            found.append(word)
    return found


def _pg_object_name(name1: str, name2: str | None, label: str) -> str:
    """PostgreSQL's makeObjectName: shorten the longer part until the name fits 63 bytes."""
    overhead = len(label) + 1 + (1 if name2 is not None else 0)
    available = 63 - overhead
    chars1, chars2 = len(name1), len(name2 or "")
    while chars1 + chars2 > available:
        if chars1 > chars2:
            chars1 -= 1
        else:
            chars2 -= 1
    parts = [name1[:chars1]] + ([name2[:chars2]] if name2 is not None else []) + [label]
    return "_".join(parts)


def _columns_named_in(check: sa.CheckConstraint, table: sa.Table) -> list[str]:
    text = " ".join(str(check.sqltext).split())
    known = set(table.columns.keys())
    return [w for w in dict.fromkeys(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text)) if w in known]


def check_stand_in(check: sa.CheckConstraint, table: sa.Table | None) -> str:
    """The ``%(constraint_name)s`` of an unnamed CHECK: the columns its SQL names, in order,
    then the first 8 hex digits of the SHA-1 of its whitespace-normalised SQL (``price > 0``
    on product gives ``ck_product_price_<8 hex>``): two checks of one column differ, and the
    name is the same in upgrade and downgrade. ``table`` None: the check of a standalone op,
    whose table's columns are not known; every identifier of its SQL that is not SQL's own
    counts."""
    text = " ".join(str(check.sqltext).split())
    words = _columns_named_in(check, table) if table is not None \
        else _identifiers_in(text) or []
    return "_".join([*words, hashlib.sha1(text.encode()).hexdigest()[:8]])


def _twin_in(table: sa.Table, original: sa.Constraint | sa.Index) -> Any:
    """The one constraint or index of ``table`` that is ``original``'s copy, if unambiguous."""
    twins = [c for c in (*table.constraints, *table.indexes) if same_item(c, original)]
    return twins[0] if len(twins) == 1 else None


def same_item(candidate: Any, original: Any) -> bool:
    """Whether ``candidate`` is a copy of ``original``: same kind, same columns or SQL."""
    if type(candidate) is not type(original):
        return False
    if isinstance(original, sa.CheckConstraint):
        return str(candidate.sqltext) == str(original.sqltext)
    if isinstance(original, sa.Index):
        return [str(e) for e in candidate.expressions] == [str(e) for e in original.expressions]
    if isinstance(original, sa.ForeignKeyConstraint):  # two of one column may refer apart
        return _definition(candidate) == _definition(original)
    return list(candidate.columns.keys()) == list(original.columns.keys())


class UnnamedConstraint(Rule):
    name = "unnamed-constraint"
    summary = "A constraint is created with no name, so its downgrade cannot drop it."
    why = (
        "Without a naming convention, autogenerate writes `create_foreign_key(None, ...)`; the "
        "database picks a name Alembic never learns, and the downgrade's "
        "`drop_constraint(None, ...)` dies (or, done by hand, drops the wrong constraint). "
        "migrafix names every constraint and index the revision creates or drops without a "
        "name, in upgrade and downgrade alike, with the name SQLAlchemy's naming convention "
        "gives it: the project's `target_metadata.naming_convention` for that kind where it has "
        "one, else migrafix's default (`ix_%(table_name)s_%(column_0_N_name)s`, "
        "`uq_%(table_name)s_%(column_0_N_name)s`, `ck_%(table_name)s_%(constraint_name)s`, "
        "`fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s`, `pk_%(table_name)s`): "
        "every column is in the name, so two of one table never share one. An unnamed CHECK's "
        "`%(constraint_name)s` is the columns its SQL names and a hash of its SQL. Two items "
        "of one table the convention would still name alike (a unique and a plain index on the "
        "same columns) each get a hash of their definition. Names longer than the dialect "
        "allows are truncated as SQLAlchemy truncates them."
    )
    fix_safety = (
        "Safe for a revision that has not run anywhere yet, which is what autogenerate "
        "produces. A revision that already ran created its constraints under the database's "
        "own names (PostgreSQL `order_invoice_id_fkey`, MySQL `order_ibfk_1`): do not rename "
        "those after the fact. `migrafix rewrite --naming database` leaves such a revision's "
        "creates as they are and names only its drops, by the database's name (found at run "
        "time by the constraint's columns where databases differ)."
    )
    options = "`naming_convention = {fk = \"...\", ...}` in `[tool.migrafix]` replaces the default."

    def apply(self, revision: Revision, context: RuleContext) -> None:
        naming: NamingConvention | DatabaseNaming
        project = {**context.settings.naming_convention, **_explicit(context.naming_convention)}
        if context.constraint_names == "database":
            naming = DatabaseNaming(
                context.dialect, NamingConvention(project, context.dialect) if project else None)
            naming.shared_check_names = _shared_check_names(revision)
        else:
            naming = NamingConvention(
                {**DEFAULT_NAMING_CONVENTION, **project},
                context.dialect,
            )
        for tree in revision.trees():
            named_ops: list[tuple[ops.MigrateOperation, ops.MigrateOperation, str]] = []
            for _, op in tree.walk():
                named = self._named(op, naming)
                if named is not None:
                    named_ops.append((op, *named))
            if isinstance(naming, NamingConvention):
                named_ops = _told_apart(named_ops, naming)
            for op, new_op, message in named_ops:
                context.report(Finding(self.name, tree.direction, table_label(op), message,
                                       fixed=new_op is not op, op=op))
            tree.replace_all({id(op): [new_op] for op, new_op, _ in named_ops})

    def _named(
        self, op: ops.MigrateOperation, naming: NamingConvention | DatabaseNaming
    ) -> tuple[ops.MigrateOperation, str] | None:
        if isinstance(naming, DatabaseNaming):
            return self._named_as_deployed(op, naming)
        if isinstance(op, ops.CreateTableOp):
            return _named_table(op, naming)
        if isinstance(op, ops.AddConstraintOp) and getattr(op, "constraint_name", "") is None:
            return _with_name(op, "constraint_name", naming.name_for_op(op),
                              f"{_verb(op)} had no name", naming)
        if isinstance(op, ops.CreateIndexOp) and op.index_name is None:
            return _with_name(op, "index_name", naming.name_for_op(op),
                              "create_index had no name", naming)
        if isinstance(op, ops.DropConstraintOp) and op.constraint_name is None:
            source = op._reverse
            name = naming.name_for_op(source) if source is not None else None
            if source is None:
                naming.reason = "no create_constraint in this file says what it drops"
            return _with_name(op, "constraint_name", name, "drop_constraint had no name", naming)
        if isinstance(op, ops.DropIndexOp) and op.index_name is None:
            name = naming.name_for_op(op._reverse) if op._reverse is not None else None
            return _with_name(op, "index_name", name, "drop_index had no name", naming)
        return None

    def _named_as_deployed(
        self, op: ops.MigrateOperation, naming: DatabaseNaming
    ) -> tuple[ops.MigrateOperation, str] | None:
        """In a revision that already ran, only what cannot run without a name: a drop. A
        create with no name is left to the database, which names it on a fresh build as it
        named it on every deployed one, whichever database that is."""
        if isinstance(op, ops.DropConstraintOp) and op.constraint_name is None:
            attribute, verb = "constraint_name", "drop_constraint"
        elif isinstance(op, ops.DropIndexOp) and op.index_name is None:
            attribute, verb = "index_name", "drop_index"
        else:
            return None
        source = op._reverse
        if isinstance(source, (ops.AddConstraintOp, ops.CreateIndexOp)):
            name = naming.name_for_drop(source)
        else:
            name = None
            naming.reason = f"no create_{verb[5:]} in this file says what it drops"
        return _with_name(op, attribute, name, f"{verb} had no name", naming)


_Named = tuple[ops.MigrateOperation, ops.MigrateOperation, str]  # (op, named op, message)


def _told_apart(named_ops: list[_Named], naming: NamingConvention) -> list[_Named]:
    """``named_ops`` with the names that different items of one table would share made
    distinct (``distinct_names``). A create and a drop of one name are a replacement, not a
    clash: creates meet creates, drops drops."""
    groups: dict[tuple[bool, str | None, str | None, str], list[int]] = {}
    for index, (op, new_op, _) in enumerate(named_ops):
        name = getattr(new_op, _name_attribute(new_op), None)
        if new_op is not op and isinstance(name, str):  # named here, not by the user
            is_drop = isinstance(new_op, (ops.DropIndexOp, ops.DropConstraintOp))
            table = getattr(new_op, "table_name", None) or getattr(new_op, "source_table", None)
            groups.setdefault((is_drop, getattr(new_op, "schema", None), table, name),
                              []).append(index)
    told = list(named_ops)
    for (_, _, _, name), indexes in groups.items():
        if len(indexes) < 2:
            continue
        items = [_created_by(named_ops[index][1]) for index in indexes]
        for index, distinct in zip(indexes, distinct_names(items, name, naming), strict=True):
            op, new_op, _ = named_ops[index]
            if distinct != name:
                renamed = copy.copy(new_op)
                setattr(renamed, _name_attribute(new_op), distinct)
                what = named_ops[index][2].rsplit(": named ", 1)[0]
                told[index] = (op, renamed, f"{what}: named {distinct} ({name} would be "
                               "another's of its table too)")
    return told


def distinct_names(
    items: Sequence[sa.Constraint | sa.Index | None], name: str, naming: NamingConvention
) -> list[conv]:
    """The names of ``items``, which the convention all names ``name``: unchanged if they are
    one item, else each ``name`` + ``_`` + 8 hex digits of a hash of its definition (a unique
    and a plain index on the same columns; two foreign keys of the same columns to one table).
    A hash, not an order, so that the downgrade's drops get the names the upgrade's creates
    got. ``None``: an item that cannot be described: all keep the name then."""
    definitions = [_definition(item) if item is not None else None for item in items]
    if None in definitions or len(set(definitions)) < 2:
        return [conv(name)] * len(items)
    return [naming.truncated(f"{name}_{hashlib.sha1(d.encode()).hexdigest()[:8]}",
                             isinstance(item, sa.Index))
            for item, d in zip(items, definitions, strict=True) if d is not None]


def _name_attribute(op: ops.MigrateOperation) -> str:
    return "index_name" if isinstance(op, (ops.CreateIndexOp, ops.DropIndexOp)) \
        else "constraint_name"


def _created_by(op: ops.MigrateOperation) -> sa.Constraint | sa.Index | None:
    """The index or constraint ``op`` creates or, a drop, what its create made."""
    create = op if isinstance(op, (ops.CreateIndexOp, ops.AddConstraintOp)) \
        else getattr(op, "_reverse", None)
    if not isinstance(create, (ops.CreateIndexOp, ops.AddConstraintOp)):
        return None
    try:
        return _item_of(create)
    except Exception:  # a stub Alembic cannot build: not ours to describe
        return None


def _definition(item: sa.Constraint | sa.Index) -> str:
    """What ``item`` is, names aside: kind, columns or expressions, and the options that tell
    two apart."""
    parts = [type(item).__name__]
    if isinstance(item, sa.Index):
        parts += [str(item.unique), *(str(e) for e in item.expressions)]
    elif isinstance(item, sa.ForeignKeyConstraint):
        parts += [*item.column_keys, *(e.target_fullname for e in item.elements),
                  *(str(getattr(item, k)) for k in ("ondelete", "onupdate", "deferrable",
                                                    "initially", "match"))]
    elif isinstance(item, sa.CheckConstraint):
        parts.append(str(item.sqltext))
    else:
        parts += [str(column) for column in getattr(item, "columns", ())]
    parts += [f"{key}={value}" for key, value in sorted(item.dialect_kwargs.items())]
    return "\x00".join(parts)


def _shared_check_names(revision: Revision) -> set[tuple[str | None, str, str]]:
    """(schema, table, name) of the PostgreSQL names that two unnamed CHECKs created in one
    direction of ``revision`` would share."""
    shared: set[tuple[str | None, str, str]] = set()
    for tree in revision.trees():
        seen: set[tuple[str | None, str, str]] = set()
        for _, op in tree.walk():
            checks: list[tuple[str | None, str, str | None]] = []
            if isinstance(op, ops.CreateCheckConstraintOp) and op.constraint_name is None:
                checks.append((op.schema, op.table_name,
                               pg_check_name(op.table_name, str(op.condition), None)))
            elif isinstance(op, ops.CreateTableOp):
                columns = [c.name for c in op.columns if isinstance(c, sa.Column)]
                checks += [(op.schema, op.table_name,
                            pg_check_name(op.table_name, str(c.sqltext), columns))
                           for c in op.columns
                           if isinstance(c, sa.CheckConstraint) and c.name is None]
            for schema, table, name in checks:
                if name is not None:
                    key = (schema, table, name)
                    (shared if key in seen else seen).add(key)
    return shared


def _explicit(convention: Mapping[Any, str]) -> dict[Any, str]:
    """The project's convention, less SQLAlchemy's built-in ``ix`` entry that every MetaData
    has: that one is not a choice the project made, so ours must not be overridden by it."""
    explicit = dict(convention)
    if explicit.get("ix") == sa.BLANK_SCHEMA or explicit.get("ix") == "ix_%(column_0_label)s":
        explicit.pop("ix")
    return explicit


def _verb(op: ops.MigrateOperation) -> str:
    return {
        ops.CreateForeignKeyOp: "create_foreign_key",
        ops.CreateUniqueConstraintOp: "create_unique_constraint",
        ops.CreateCheckConstraintOp: "create_check_constraint",
        ops.CreatePrimaryKeyOp: "create_primary_key",
    }.get(type(op), "create constraint")


def _with_name(
    op: ops.MigrateOperation,
    attribute: str,
    name: conv | NameLookup | None,
    what: str,
    naming: NamingConvention | DatabaseNaming,
) -> tuple[ops.MigrateOperation, str]:
    if name is None:
        reason = getattr(naming, "reason", "") or "the naming convention cannot name it"
        return op, f"{what}, and {reason}: name it by hand"
    named = derived(op, copy.copy(op))
    setattr(named, attribute, name)
    if isinstance(name, NameLookup):
        return named, f"{what}: found by its columns when it runs (each database named it its own way)"
    return named, f"{what}: named {name}"


def _named_table(
    op: ops.CreateTableOp, naming: NamingConvention
) -> tuple[ops.MigrateOperation, str] | None:
    if not any(isinstance(i, sa.Constraint) and i.name is None for i in op.columns):
        return None
    try:
        table = op.to_table().to_metadata(sa.MetaData())  # ours: naming touches no model object
    except sa.exc.ArgumentError as exc:  # so would `alembic upgrade`: the file's to mend
        return op, (f"create_table {op.table_name}: unnamed constraints, in a table SQLAlchemy "
                    f"cannot build ({exc}): name them by hand")
    # The constraints the op lists as arguments: those a revision file writes. Those of column
    # arguments (primary_key=True, ForeignKey(...), unique=True) exist only in the table;
    # the codemod leaves them as they are written, and the database names them.
    listed = {id(twin) for item in op.columns if isinstance(item, sa.Constraint)
              if (twin := _twin_in(table, item)) is not None}
    unnamed = [c for c in table.constraints if c.name is None]
    names, of_columns = [], 0
    for constraint, name in zip(unnamed, _distinct_in_table(unnamed, naming), strict=True):
        if name is not None:
            constraint.name = name
            if id(constraint) in listed:
                names.append(name)
            else:
                of_columns += 1
    if not names:  # the reason is the naming's own: under database naming it is no convention
        reason = getattr(naming, "reason", "") or "the naming convention cannot name them"
        return op, f"create_table {op.table_name}: unnamed constraints, and {reason}: name them by hand"
    new_op = derived(op, ops.CreateTableOp.from_table(table))
    message = f"create_table {op.table_name}: named {', '.join(sorted(names))}"
    if of_columns:
        message += (f" ({of_columns} more, from column arguments such as primary_key=True, "
                    "keep the names the database gives them)")
    return new_op, message


def _distinct_in_table(
    unnamed: list[sa.Constraint], naming: NamingConvention
) -> list[conv | None]:
    """The convention's names of a new table's ``unnamed`` constraints, shared ones told
    apart (``distinct_names``)."""
    names = naming.names_for(unnamed)
    by_name: dict[str, list[int]] = {}
    for index, name in enumerate(names):
        if name is not None:
            by_name.setdefault(name, []).append(index)
    for indexes in by_name.values():
        if len(indexes) > 1:
            shared = names[indexes[0]]
            assert shared is not None
            told = distinct_names([unnamed[i] for i in indexes], shared, naming)
            for index, name in zip(indexes, told, strict=True):
                names[index] = name
    return names


UnnamedConstraint.examples = (
    Example(
        title="a foreign key added to an existing table",
        dialect="postgresql",
        settings={"ignore": ["lock-timeout"]},
        before="""
            metadata = sa.MetaData()
            invoice = sa.Table("invoice", metadata, sa.Column("id", sa.Integer, primary_key=True))
            order = sa.Table("order", metadata, sa.Column("id", sa.Integer, primary_key=True))
        """,
        after="""
            metadata = sa.MetaData()
            invoice = sa.Table("invoice", metadata, sa.Column("id", sa.Integer, primary_key=True))
            order = sa.Table(
                "order", metadata,
                sa.Column("id", sa.Integer, primary_key=True),
                sa.Column("invoice_id", sa.Integer, sa.ForeignKey("invoice.id")),
            )
        """,
        autogenerated_upgrade=r"""
            op.add_column('order', sa.Column('invoice_id', sa.Integer(), nullable=True))
            op.create_foreign_key(None, 'order', 'invoice', ['invoice_id'], ['id'])
        """,
        fixed_upgrade=r"""
            # revision rev
            op.add_column('order', sa.Column('invoice_id', sa.Integer(), nullable=True))
            op.create_foreign_key(op.f('fk_order_invoice_id_invoice'), 'order', 'invoice', ['invoice_id'], ['id'], postgresql_not_valid=True)

            # revision rev_post
            # migrafix: VALIDATE checks existing rows against the constraints added NOT VALID before,
            # while writes go on. If it fails, fix those rows and upgrade again.
            with op.get_context().autocommit_block():
                op.execute('ALTER TABLE "order" VALIDATE CONSTRAINT fk_order_invoice_id_invoice')
        """,
        fixed_downgrade=r"""
            # revision rev_post
            pass

            # revision rev
            op.drop_constraint(op.f('fk_order_invoice_id_invoice'), 'order', type_='foreignkey')
            op.drop_column('order', 'invoice_id')
        """,
    ),
    Example(
        title="the constraints of a new table",
        before="""
            metadata = sa.MetaData()
        """,
        after="""
            metadata = sa.MetaData()
            product = sa.Table(
                "product", metadata,
                sa.Column("id", sa.Integer, primary_key=True),
                sa.Column("sku", sa.String(20), unique=True),
                sa.Column("price", sa.Numeric(10, 2)),
                sa.CheckConstraint("price > 0"),
            )
        """,
        autogenerated_upgrade=r"""
            op.create_table('product',
            sa.Column('id', sa.Integer(), nullable=False),
            sa.Column('sku', sa.String(length=20), nullable=True),
            sa.Column('price', sa.Numeric(precision=10, scale=2), nullable=True),
            sa.CheckConstraint('price > 0'),
            sa.PrimaryKeyConstraint('id'),
            sa.UniqueConstraint('sku')
            )
        """,
        fixed_upgrade=r"""
            op.create_table('product',
            sa.Column('id', sa.Integer(), nullable=False),
            sa.Column('sku', sa.String(length=20), nullable=True),
            sa.Column('price', sa.Numeric(precision=10, scale=2), nullable=True),
            sa.CheckConstraint('price > 0', name=op.f('ck_product_price_2425a422')),
            sa.PrimaryKeyConstraint('id', name=op.f('pk_product')),
            sa.UniqueConstraint('sku', name=op.f('uq_product_sku'))
            )
        """,
        fixed_downgrade=r"""
            op.drop_table('product')
        """,
    ),
)
