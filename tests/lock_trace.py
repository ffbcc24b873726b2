"""What a migration does to a PostgreSQL table, proven without a clock: every statement an
``alembic upgrade`` runs, in which transaction (or in autocommit), the locks its transaction
holds on user tables once it has run, and what PostgreSQL said while running it.

Two halves. In the ``alembic`` process, :func:`record` listens to the engine env.py migrates
with (:func:`install` puts it in a harness project's env.py, switched on by
``-x lock_trace=PATH``) and appends one JSON line per statement to PATH. In the test,
:func:`read` turns the file into a :class:`Trace` to assert on. PostgreSQL through psycopg 3
(the tests' driver: its notice handler and `autocommit` attribute are read).

- After each statement run inside a transaction, a probe on the same connection (a raw DBAPI
  cursor: no SQLAlchemy event sees it) reads ``pg_locks`` for this backend. Its
  ``virtualtransaction`` names the transaction; locks are held until it ends, so the locks
  after its last statement are all it took. The probe's own locks are on catalogs, which
  are left out. A statement run in autocommit is a transaction of its own, already committed
  when the probe could run: its lock is the one PostgreSQL documents for it
  (:func:`documented_lock`, which tests/test_lock_behaviour.py checks against pg_locks).
- The session runs with ``client_min_messages = debug1``: PostgreSQL then says when it scans a
  table to verify a constraint (``verifying table "t"``), rewrites it (``rewriting table
  "t"``), checks a foreign key (``validating foreign key constraint "c"``), builds an
  index on it, or skips the scan of a SET NOT NULL because a valid CHECK
  proves it (``existing constraints on column "t.c" are sufficient to prove that it does not
  contain nulls``, PostgreSQL >= 12). Each statement carries what was said while it ran.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

__all__ = [
    "BLOCKS_READS",
    "BLOCKS_WRITES",
    "Lock",
    "Statement",
    "Trace",
    "Transaction",
    "documented_lock",
    "install",
    "read",
    "record",
    "upgrade",
]

# pg_locks' names of the table lock modes that conflict with ROW EXCLUSIVE (what an UPDATE,
# INSERT or DELETE takes): while a transaction holds one, the application's writes wait.
BLOCKS_WRITES = frozenset(
    {"ShareLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock"}
)
# ... and the one that conflicts with ACCESS SHARE: reads wait too.
BLOCKS_READS = frozenset({"AccessExclusiveLock"})

_PROBE = """
SELECT l.virtualtransaction, n.nspname, c.relname, c.relkind, t.relname, l.mode
FROM pg_locks l
LEFT JOIN pg_class c ON c.oid = l.relation
LEFT JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_index i ON i.indexrelid = c.oid
LEFT JOIN pg_class t ON t.oid = i.indrelid
WHERE l.pid = pg_backend_pid() AND l.granted
"""
_SYSTEM_SCHEMAS = ("pg_catalog", "information_schema")


# --- the recording half, run inside `alembic` ----------------------------------------------


def record(engine: sa.Engine, path: str | Path) -> None:
    """Append every statement ``engine`` runs from now on to ``path``, one JSON object a line:
    ``sql``, ``parameters``, ``autocommit``, ``transaction``, ``locks``, ``notices``,
    ``rowcount``, ``error``."""
    path = Path(path)
    notices: list[str] = []
    counter = iter(range(1, 1 << 62))

    @event.listens_for(engine, "connect")
    def debug_messages(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.add_notice_handler(
            lambda diag: notices.append(f"{diag.severity_nonlocalized}: {diag.message_primary}"))
        autocommit = dbapi_connection.autocommit
        dbapi_connection.autocommit = True  # a SET outside any transaction of the migration's
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SET client_min_messages = debug1")
        dbapi_connection.autocommit = autocommit

    @event.listens_for(engine, "before_cursor_execute")
    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        notices.clear()  # what PostgreSQL said before this statement is not about it

    def write(cursor: Any, statement: str, parameters: Any, error: str | None) -> None:
        autocommit = bool(cursor.connection.autocommit)
        transaction: str | None = None
        locks: list[list[str]] = []
        lock_timeout: str | None = None
        if not autocommit and error is None:
            transaction, locks, lock_timeout = _probe(cursor.connection)
        if transaction is None:
            # A statement run in autocommit is a transaction of its own; a failed one in a
            # transaction cannot be probed (its transaction is aborted): it stands alone too.
            transaction = f"{'autocommit' if autocommit else 'failed'} #{next(counter)}"
        entry = {
            "sql": statement,
            "parameters": parameters,
            "autocommit": autocommit,
            "transaction": transaction,
            "locks": locks,
            "lock_timeout": lock_timeout,
            "notices": list(notices),
            "rowcount": cursor.rowcount if error is None else None,
            "error": error,
        }
        # Written at once: a migration that dies leaves its trace up to the failed statement.
        with path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(entry, default=str) + "\n")

    @event.listens_for(engine, "after_cursor_execute")
    def after(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        write(cursor, statement, parameters, None)

    @event.listens_for(engine, "handle_error")
    def failed(context: Any) -> None:
        if context.cursor is not None and context.statement is not None:
            write(context.cursor, context.statement, context.parameters,
                  str(context.original_exception).strip())


def _probe(dbapi_connection: Any) -> tuple[str, list[list[str]], str]:
    """This backend's transaction, the locks it holds on relations outside the catalogs
    (``[table, relation, mode]``, where ``table`` is the relation or the table of an index),
    and its ``lock_timeout`` (what a statement's waits had: only a ``SET`` changes it)."""
    with dbapi_connection.cursor() as cursor:
        cursor.execute(_PROBE)
        rows = cursor.fetchall()
        cursor.execute("SHOW lock_timeout")
        lock_timeout = str(cursor.fetchone()[0])
    transaction = rows[0][0] if rows else "?"
    locks = sorted({
        (table or relation, relation, mode)
        for _, schema, relation, kind, table, mode in rows
        if relation is not None and kind in ("r", "p", "i", "I")
        and schema not in _SYSTEM_SCHEMAS and not schema.startswith("pg_toast")
    })
    return transaction, [list(lock) for lock in locks], lock_timeout


# --- in the test ----------------------------------------------------------------------------

ENV_ANCHOR = "    with connectable.connect() as connection:\n"


def install(project: Any) -> None:
    """Put the recorder into a tests/harness.py project's env.py: ``alembic -x
    lock_trace=PATH ...`` then records into PATH (without it, env.py runs as before)."""
    env = project.root / "env.py"
    text = env.read_text()
    assert ENV_ANCHOR in text, "the harness's env.py changed: update lock_trace.ENV_ANCHOR"
    hook = (
        '    trace = context.get_x_argument(as_dictionary=True).get("lock_trace")\n'
        "    if trace:\n"
        "        import sys\n"
        f"        sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})\n"
        "        import lock_trace\n"
        "        lock_trace.record(connectable, trace)\n"
    )
    env.write_text(text.replace(ENV_ANCHOR, hook + ENV_ANCHOR, 1))


def upgrade(project: Any, target: str = "head", *, command: str = "upgrade") -> Trace:
    """Run ``alembic upgrade target`` (or ``downgrade``) with the recorder on; its trace."""
    index = len(list(project.root.glob("trace-*.jsonl"))) + 1
    path = project.root / f"trace-{index}.jsonl"
    project.alembic("-x", f"lock_trace={path}", command, target)
    return read(path)


@dataclass(frozen=True)
class Lock:
    table: str  # the table, or for a lock on an index the index's table
    relation: str
    mode: str  # as pg_locks names it: "AccessExclusiveLock", ...


_SCAN_NOTICES = (
    re.compile(r'^DEBUG: (verifying) table "(?P<table>[^"]+)"$'),
    re.compile(r'^DEBUG: (rewriting) table "(?P<table>[^"]+)"$'),
    re.compile(r'^DEBUG: (building index) "[^"]+" on table "(?P<table>[^"]+)"'),
)
# A foreign key's check of the rows (RI_Initial_Check) says only the constraint's name: it is
# taken to read the tables its statement names, the ALTERed one and the one it REFERENCES.
_FOREIGN_KEY_NOTICE = re.compile(r'^DEBUG: validating foreign key constraint "[^"]+"$')
# Where a statement names the tables it locks.
_NAMING_KEYWORDS = "TABLE|FROM|UPDATE|INTO|JOIN|USING|ON|REFERENCES"
_WRITING_KEYWORDS = r"UPDATE|DELETE\s+FROM|INSERT\s+INTO|MERGE\s+INTO"
_DML = re.compile(r"^\s*(?:WITH\b.*?\)\s*)?(SELECT|UPDATE|DELETE|INSERT|MERGE)\b",
                  re.IGNORECASE | re.DOTALL)


def _named(table: str, after: str) -> str:
    """A regex for ``table`` named right after one of the keywords ``after`` (a regex
    alternation): bare, quoted or schema-qualified (a bare ``order`` in ``ORDER BY`` is not
    the table)."""
    name = rf'(?:"?\w+"?\.)?(?:"{re.escape(table)}"|{re.escape(table)}(?!\w))'
    return rf"\b(?:{after})\s+(?:ONLY\s+|IF\s+EXISTS\s+)?{name}"


@dataclass(frozen=True)
class Statement:
    index: int
    sql: str
    parameters: Any
    autocommit: bool
    transaction: str
    locks: frozenset[Lock]  # held by its transaction once it had run; empty in autocommit
    lock_timeout: str | None  # its transaction's once it had run ("0": none); None in autocommit
    notices: tuple[str, ...]
    rowcount: int | None
    error: str | None

    def scans(self, table: str) -> list[str]:
        """How PostgreSQL said this statement scanned, rewrote or indexed ``table``."""
        found = [f"{match.group(1)} {table}" for notice in self.notices
                 for pattern in _SCAN_NOTICES
                 if (match := pattern.match(notice)) and match.group("table") == table]
        if any(_FOREIGN_KEY_NOTICE.match(notice) for notice in self.notices) and re.search(
                _named(table, "TABLE|REFERENCES"), self.sql, re.IGNORECASE):
            found.append(f"validating a foreign key of {table}")
        return found

    def touches_rows(self, table: str) -> bool:
        """A SELECT, UPDATE, DELETE, INSERT or MERGE that reads or writes rows of ``table``."""
        return _DML.match(self.sql) is not None and re.search(
            _named(table, "FROM|UPDATE|INTO|JOIN|USING"), self.sql, re.IGNORECASE) is not None

    def writes_rows(self, table: str) -> bool:
        """An UPDATE, DELETE, INSERT or MERGE of ``table``."""
        return re.match(rf"\s*{_named(table, _WRITING_KEYWORDS)}", self.sql,
                        re.IGNORECASE) is not None

    def said(self, text: str) -> bool:
        return any(text in notice for notice in self.notices)

    def __str__(self) -> str:
        where = "autocommit" if self.autocommit else f"transaction {self.transaction}"
        return f"#{self.index} ({where}): {' '.join(self.sql.split())}"


def documented_lock(sql: str) -> str:
    """The table lock PostgreSQL's documentation gives a statement (the "Explicit Locking"
    chapter, and ALTER TABLE's page per subcommand), for statements run in autocommit, whose
    locks no probe can see. A statement not known to take less is taken to take ACCESS
    EXCLUSIVE, the most that any takes."""
    words = " ".join(sql.split()).upper()
    if re.match(r"(?:WITH\b.*\)\s*)?SELECT\b", words) and " FOR " not in words:
        return "AccessShareLock"
    if re.match(r"(?:UPDATE|DELETE|INSERT|MERGE)\b", words):
        return "RowExclusiveLock"
    if re.fullmatch(r'ALTER TABLE (?:ONLY )?\S+ VALIDATE CONSTRAINT \S+', words):
        return "ShareUpdateExclusiveLock"
    if re.match(r"(?:CREATE (?:UNIQUE )?|DROP )INDEX CONCURRENTLY\b", words):
        return "ShareUpdateExclusiveLock"  # reads and writes go on while it builds or waits
    if re.match(r"VACUUM\b", words) and "FULL" not in words:
        return "ShareUpdateExclusiveLock"  # not FULL: the table stays readable and writable
    if re.match(r"(?:CREATE (?:UNIQUE )?INDEX|DROP INDEX) CONCURRENTLY\b", words):
        return "ShareUpdateExclusiveLock"
    return "AccessExclusiveLock"


@dataclass(frozen=True)
class Transaction:
    key: str
    autocommit: bool
    statements: tuple[Statement, ...]

    def modes(self, table: str) -> set[str]:
        """Lock modes held on ``table`` and its indexes: as pg_locks shows them, or in
        autocommit as documented for the one statement (when it names the table)."""
        if self.autocommit:
            statement = self.statements[0]
            names = re.search(_named(table, _NAMING_KEYWORDS), statement.sql, re.IGNORECASE)
            return {documented_lock(statement.sql)} if names or statement.scans(table) else set()
        return {lock.mode for s in self.statements for lock in s.locks if lock.table == table}

    def blocks_writes(self, table: str) -> bool:
        return bool(self.modes(table) & BLOCKS_WRITES)


@dataclass(frozen=True)
class Trace:
    statements: tuple[Statement, ...]

    def transactions(self) -> list[Transaction]:
        """In the order they began."""
        groups: dict[str, list[Statement]] = {}
        for statement in self.statements:
            groups.setdefault(statement.transaction, []).append(statement)
        return [Transaction(key, group[0].autocommit, tuple(group))
                for key, group in groups.items()]

    def transaction_of(self, statement: Statement) -> Transaction:
        return next(t for t in self.transactions() if t.key == statement.transaction)

    def matching(self, pattern: str) -> list[Statement]:
        """Statements whose SQL (whitespace collapsed) matches ``pattern``, case-insensitive."""
        return [s for s in self.statements
                if re.search(pattern, " ".join(s.sql.split()), re.IGNORECASE)]

    def blocking_work(self, table: str) -> list[str]:
        """What ran on ``table`` while application writes to it had to wait: every statement
        that scanned, rewrote or indexed it, or read or wrote its rows, in a transaction
        holding a lock that conflicts with ROW EXCLUSIVE on it. [] is the promise."""
        found = []
        for transaction in self.transactions():
            if not transaction.blocks_writes(table):
                continue
            modes = "/".join(sorted(transaction.modes(table) & BLOCKS_WRITES))
            for statement in transaction.statements:
                work = statement.scans(table)
                if statement.touches_rows(table):
                    work.append(f"rows of {table}")
                if work:
                    found.append(f"{statement} [{', '.join(work)}] under {modes}")
        return found

    def unbounded_lock_waits(self, table: str) -> list[str]:
        """Statements that took a lock stopping writes to ``table`` with no ``lock_timeout``:
        while such a statement waits for its lock, every query on the table queues behind it,
        for as long as what holds the lock runs. In a transaction, a lock is taken by the
        statement after which it is first held; in autocommit, by the statement, as
        documented. [] is the promise."""
        found = []
        for transaction in self.transactions():
            if transaction.autocommit:
                if transaction.blocks_writes(table):
                    found.append(f"{transaction.statements[0]} (no lock_timeout in autocommit)")
                continue
            held: set[str] = set()
            for statement in transaction.statements:
                modes = {lock.mode for lock in statement.locks if lock.table == table}
                if (modes - held) & BLOCKS_WRITES and statement.lock_timeout in (None, "0"):
                    found.append(f"{statement} (took {'/'.join(sorted(modes - held))})")
                held |= modes
        return found

    def __str__(self) -> str:
        lines = []
        for statement in self.statements:
            lines.append(str(statement))
            held = sorted(f"{lock.relation}:{lock.mode}" for lock in statement.locks)
            lines += [f"    locks: {' '.join(held)}"] if held else []
            lines += [f"    rows: {statement.rowcount}"] if statement.rowcount not in (None, -1) \
                else []
            lines += [f"    {notice}" for notice in statement.notices]
            lines += [f"    error: {statement.error}"] if statement.error else []
        return "\n".join(lines)


def read(path: str | Path) -> Trace:
    return Trace(tuple(_statements(Path(path))))


def _statements(path: Path) -> Iterator[Statement]:
    for index, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        entry = json.loads(line)
        yield Statement(
            index=index,
            sql=entry["sql"],
            parameters=entry["parameters"],
            autocommit=entry["autocommit"],
            transaction=entry["transaction"],
            locks=frozenset(Lock(*lock) for lock in entry["locks"]),
            lock_timeout=entry.get("lock_timeout"),
            notices=tuple(entry["notices"]),
            rowcount=entry["rowcount"],
            error=entry["error"],
        )
