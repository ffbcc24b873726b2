"""``fix_source``: one revision file through the same rules as the hook, written back minimally.

Nothing in the file is executed: it is parsed with libcst and read statically
(codemod/reader.py); only SQLAlchemy's and Alembic's own constructors are called.
"""

from __future__ import annotations

import functools
import io
import re
import tokenize
from collections.abc import Iterator, Mapping
from typing import TypeVar

import libcst as cst
import sqlalchemy as sa
from alembic.operations import ops

from migrafix.codemod.api import FileFinding, FileResult, Options
from migrafix.codemod.positions import StatementPositions
from migrafix.codemod.reader import (
    OpaqueOp,
    ReadFunction,
    ReadRevision,
    read_revision,
    table_of,
)
from migrafix.engine import fix_revision
from migrafix.ops import AutocommitBlockOp
from migrafix.revision import every_op, origin_of
from migrafix.rules import RULES_BY_NAME, Finding, RuleContext

__all__ = ["check_source", "fix_source"]

_Op = TypeVar("_Op", bound=ops.MigrateOperation)

_IGNORE = re.compile(r"#\s*migrafix:\s*ignore(-file)?(?:\[([\w\-, ]+)\])?")


def fix_source(source: str, options: Options) -> FileResult:
    """The fixed source and what was found. Raises ``libcst.ParserSyntaxError`` for a file
    that does not parse."""
    return _process(source, options, write=True)


def check_source(source: str, options: Options) -> tuple[FileFinding, ...]:
    """What ``fix_source`` would find, without writing the fixed code: what ``check`` needs.
    Raises ``libcst.ParserSyntaxError`` for a file that does not parse."""
    return _process(source, options, write=False).findings


def _process(source: str, options: Options, write: bool) -> FileResult:
    module = cst.parse_module(source)
    read = read_revision(module)
    if read.upgrade is None:
        return FileResult(source, ())
    # A file without downgrade() (OpenStack's histories have none) is read all the same: every
    # hazard but the unnamed drop is in the upgrade. Its downgrade is empty and stays unwritten.
    downgrade = read.downgrade.container if read.downgrade is not None else ops.DowngradeOps([])

    file_ignored = _file_ignores(source)
    if "*" in file_ignored:
        return FileResult(source, ())
    settings = options.settings
    if file_ignored:
        settings = settings.merged({"ignore": [*settings.ignore, *file_ignored]}, "file comment")

    if read.downgrade is not None:
        _link_twins(read.upgrade, read.downgrade)
    dialect = _dialect(options.dialect)
    context = RuleContext(
        settings=settings,
        dialect=dialect,
        naming_convention=dict(settings.naming_convention),
        constraint_names="database" if options.naming == "database" else "convention",
        spell_option=lambda name, value: f"--{name} {value}",
        rerun="run `migrafix rewrite`",
        report_unmatched_renames=False,
        flag_look_alikes=options.naming != "database",
        in_batch=lambda group: any(id(origin_of(group)) in f.batch_of
                                   for _, f in _functions(read)),
    )
    before = {}
    if write:  # the writer (and black) are imported only when something may be written
        from migrafix.codemod.writer import snapshot

        before = {name: snapshot(f.container) for name, f in _functions(read)}
    suppressed = _statement_ignores(read, source)
    findings = fix_revision(
        read.upgrade.container, downgrade, context,
        hidden=lambda rule: [op for op, rules in suppressed if rule in rules or "*" in rules],
    )
    new_source = _written(source, read, before, options) if write else source

    # Positions cost a parse: only for a file with something to report.
    positions = None
    if findings or any(isinstance(op, AutocommitBlockOp) for _, f in _functions(read)
                       for op in f.container.ops):
        positions = StatementPositions(source, module)
    file_findings = [_located(f, read, positions) for f in findings]
    if settings.rule_enabled("concurrent-index"):
        silenced = {id(op) for op, rules in suppressed
                    if "concurrent-index" in rules or "*" in rules}
        file_findings += _autocommit_findings(read, positions, silenced)
    file_findings.sort(key=lambda f: (f.line, f.column, f.rule))
    return FileResult(new_source, tuple(file_findings))


def _written(
    source: str, read: ReadRevision, before: Mapping[str, list[object]], options: Options
) -> str:
    """The module with each function the rules changed written back."""
    from migrafix.codemod.writer import FunctionWriter, Style, snapshot

    if all(snapshot(f.container) == before[name] for name, f in _functions(read)):
        return source  # no rule changed anything: no need to learn the file's style
    module = read.module
    style = Style(read.op_name, read.sa_name or "sa", _prefers_double_quotes(source),
                  options.dialect)
    rewritten = {}
    for name, function in _functions(read):
        written = FunctionWriter(function, before[name], style).write()
        if written is not function.function:
            rewritten[id(function.function)] = written
    if not rewritten:
        return source
    # upgrade() and downgrade() are top level: swap them in place
    new_module = module.with_changes(
        body=[rewritten.get(id(statement), statement) for statement in module.body])
    missing = {line for line in style.imports if not _already_imported(line, read.imported)}
    if missing:
        new_module = _with_imports(new_module, missing)
    return new_module.code


@functools.cache
def _dialect(name: str) -> sa.engine.Dialect:
    """The dialect called ``name``, found by URL as SQLAlchemy finds it ("mariadb" has a class
    only through its URL's loader)."""
    return sa.engine.make_url(f"{name}://").get_dialect()()


def _functions(read: ReadRevision) -> Iterator[tuple[str, ReadFunction]]:
    if read.upgrade is not None:
        yield "upgrade", read.upgrade
    if read.downgrade is not None:
        yield "downgrade", read.downgrade


# --- twins ------------------------------------------------------------------------------------


def _leaves(container: ops.OpContainer) -> Iterator[ops.MigrateOperation]:
    for op in container.ops:
        if isinstance(op, ops.ModifyTableOps):
            yield from op.ops
        else:
            yield op


def _link_twins(upgrade: ReadFunction, downgrade: ReadFunction) -> None:
    """A static ``drop_*`` knows only names; its twin in the other function, the op that
    creates what it drops, knows the rest (a column's type, a constraint's columns)."""
    for this, other in ((upgrade, downgrade), (downgrade, upgrade)):
        creates = list(_leaves(other.container))
        for op in _leaves(this.container):
            if isinstance(op, ops.DropColumnOp) and op._reverse is None:
                op._reverse = _single(c for c in _of(creates, ops.AddColumnOp)
                                      if (c.schema, c.table_name) == (op.schema, op.table_name)
                                      and c.column.name == op.column_name)
            elif isinstance(op, ops.DropConstraintOp) and op._reverse is None:
                op._reverse = _single(
                    c for c in creates
                    if isinstance(c, ops.AddConstraintOp)
                    and getattr(c, "constraint_name", "") == op.constraint_name
                    and table_of(c) == (op.schema, op.table_name)
                    and c.constraint_type == _constraint_type(op))
            elif isinstance(op, ops.DropIndexOp) and op._reverse is None:
                op._reverse = _single(c for c in _of(creates, ops.CreateIndexOp)
                                      if c.index_name == op.index_name
                                      and (c.schema, c.table_name) == (op.schema, op.table_name))
            elif isinstance(op, ops.DropTableOp) and op._reverse is None:
                op._reverse = _single(c for c in _of(creates, ops.CreateTableOp)
                                      if (c.schema, c.table_name) == (op.schema, op.table_name))


def _single(candidates: Iterator[_Op]) -> _Op | None:
    found = list(candidates)
    return found[0] if len(found) == 1 else None  # two candidates: ambiguous, do not guess


def _of(candidates: list[ops.MigrateOperation], kind: type[_Op]) -> list[_Op]:
    return [c for c in candidates if isinstance(c, kind)]


def _constraint_type(op: ops.DropConstraintOp) -> str | None:
    return {"foreignkey": "foreignkey", "unique": "unique", "check": "check",
            "primary": "primarykey"}.get(op.constraint_type or "", op.constraint_type)


# --- suppression ------------------------------------------------------------------------------


def _rules_in(match: re.Match[str]) -> set[str]:
    names = match.group(2)
    if not names:
        return {"*"}
    return {n.strip() for n in names.split(",") if n.strip() in RULES_BY_NAME}


def _file_ignores(source: str) -> set[str]:
    rules: set[str] = set()
    for match in _IGNORE.finditer(source):
        if match.group(1):
            rules |= _rules_in(match)
    return rules


def _statement_ignores(
    read: ReadRevision, source: str
) -> list[tuple[ops.MigrateOperation, set[str]]]:
    """``# migrafix: ignore[rule]`` on a statement's line or on the comment lines above it."""
    found: list[tuple[ops.MigrateOperation, set[str]]] = []
    module = read.module
    if "migrafix:" not in source:  # no comment to read: skip rendering every statement
        return found
    for _, function in _functions(read):
        op_by_id = {id(op): op for op in every_op(function.container)}
        for op_id, statement in function.statement_of.items():
            comments = [line.comment.value for line in getattr(statement, "leading_lines", ())
                        if line.comment is not None]
            trailing = getattr(getattr(statement, "trailing_whitespace", None), "comment", None)
            if trailing is not None:
                comments.append(trailing.value)
            if isinstance(statement, cst.SimpleStatementLine):
                comments.append(module.code_for_node(statement))
            header = getattr(getattr(statement, "body", None), "header", None)
            if header is not None and header.comment is not None:  # `with ...:  # comment`
                comments.append(header.comment.value)
            rules: set[str] = set()
            for comment in comments:
                for match in _IGNORE.finditer(comment):
                    if not match.group(1):
                        rules |= _rules_in(match)
            if rules and op_id in op_by_id:
                found.append((op_by_id[op_id], rules))
    return _with_twins(read, found)


def _with_twins(
    read: ReadRevision, found: list[tuple[ops.MigrateOperation, set[str]]]
) -> list[tuple[ops.MigrateOperation, set[str]]]:
    """A suppressed op's twin in the other function is suppressed too: naming only the drop
    of a constraint whose create was left unnamed would break the downgrade."""
    twins: list[tuple[ops.MigrateOperation, set[str]]] = []
    every = [op for _, function in _functions(read) for op in every_op(function.container)]
    for op, rules in found:
        reverse = getattr(op, "_reverse", None)
        if reverse is not None:
            twins.append((reverse, rules))
        twins += [(other, rules) for other in every if getattr(other, "_reverse", None) is op]
    return found + twins


# --- findings ---------------------------------------------------------------------------------


def _located(finding: Finding, read: ReadRevision, positions: StatementPositions | None) \
        -> FileFinding:
    line, column = 1, 1
    if finding.op is not None:
        statement = _statement_for(origin_of(finding.op), read)
        if statement is not None and positions is not None:
            line, column = positions.start(statement) or (line, column)
    message = f"{finding.direction}: {finding.message}"
    if finding.hint:
        message += f" ({finding.hint})"
    fixable_with = None
    if finding.fixable_with is not None and not finding.fixed:
        fixable_with = f"--{finding.fixable_with}"
    return FileFinding(finding.rule, line, column, message, finding.fixed, fixable_with,
                       note=finding.note and not finding.fixed)


def _statement_for(op: ops.MigrateOperation, read: ReadRevision) -> cst.BaseStatement | None:
    for _, function in _functions(read):
        statement = function.statement_of.get(id(op))
        if statement is not None:
            return statement
    return None


def _autocommit_findings(
    read: ReadRevision, positions: StatementPositions | None, silenced: set[int]
) -> list[FileFinding]:
    """An autocommit block after other statements commits them: a failure inside it leaves
    them applied while alembic_version says otherwise. rewrite cannot split a file."""
    found = []
    for name, function in _functions(read):
        earlier = 0
        for op in function.container.ops:
            if isinstance(op, AutocommitBlockOp):
                if earlier and id(op) not in silenced:
                    statement = function.statement_of.get(id(op)) or next(
                        (function.statement_of.get(id(origin_of(inner))) for inner in op.ops
                         if id(origin_of(inner)) in function.statement_of), None)
                    line, column = (1, 1)
                    if statement is not None and positions is not None:
                        line, column = positions.start(statement) or (line, column)
                    found.append(FileFinding(
                        "concurrent-index", line, column,
                        f"{name}: autocommit_block() commits the {earlier} statement(s) before "
                        "it; if the block fails they stay applied while alembic_version is not "
                        "updated: move the concurrent index ops to a revision of their own",
                        fixable=False))
            elif not _is_inert(op):
                earlier += 1
    return found


def _is_inert(op: ops.MigrateOperation) -> bool:
    """A docstring or ``pass``: not a statement the database sees."""
    if not isinstance(op, OpaqueOp):
        return False
    statement = op.statement
    if isinstance(statement, cst.SimpleStatementLine) and len(statement.body) == 1:
        small = statement.body[0]
        return isinstance(small, cst.Pass) or (
            isinstance(small, cst.Expr) and isinstance(small.value, cst.SimpleString))
    return False


# --- style and imports ------------------------------------------------------------------------


def _prefers_double_quotes(source: str) -> bool:
    """Whether the file's one-line string literals are mostly double-quoted (docstrings, which
    are triple-quoted whatever the style, do not count)."""
    singles = doubles = 0
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type != tokenize.STRING:
                continue
            body = token.string.lstrip("rbuRBUfF")
            if body.startswith(('"""', "'''")):
                continue
            if body.startswith("'"):
                singles += 1
            elif body.startswith('"'):
                doubles += 1
    except (tokenize.TokenError, SyntaxError):
        pass
    return doubles > singles


_IMPORT = re.compile(r"import ([\w.]+)(?: as (\w+))?")
_FROM_IMPORT = re.compile(r"from ([\w.]+) import (\w+)(?: as (\w+))?")


def _import_line(line: str) -> tuple[str, str | None, str | None] | None:
    """(module, name, alias) of the import lines the writer asks for: ``import m [as a]``
    (name None) or ``from m import n [as a]``."""
    if parsed := _IMPORT.fullmatch(line):
        return parsed[1], None, parsed[2]
    if parsed := _FROM_IMPORT.fullmatch(line):
        return parsed[1], parsed[2], parsed[3]
    return None


def _already_imported(line: str, imported: Mapping[str, str]) -> bool:
    """Whether the module's top-level imports already bind what an import line binds."""
    parsed = _import_line(line)
    if parsed is None:
        return False
    module, name, alias = parsed
    if name is None:  # `import a.b` binds a; `import a.b as x` binds x to a.b
        path = module if alias else module.split(".")[0]
        return imported.get(alias or path) == path
    return imported.get(alias or name) == f"{module}.{name}"


def _with_imports(module: cst.Module, imports: set[str]) -> cst.Module:
    # libcst.codemod imports libcst.matchers: a third of a second, for files that need it only
    from libcst.codemod import CodemodContext
    from libcst.codemod.visitors import AddImportsVisitor

    context = CodemodContext()
    for line in sorted(imports):
        parsed = _import_line(line)
        if parsed is not None:
            source, name, alias = parsed
            AddImportsVisitor.add_needed_import(context, source, name, asname=alias)
    return AddImportsVisitor(context).transform_module(module)
