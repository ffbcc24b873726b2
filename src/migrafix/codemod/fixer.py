"""``fix_source``: one revision file through the same rules as the hook, written back minimally.

Nothing in the file is executed: it is parsed with libcst and read statically
(codemod/reader.py); only SQLAlchemy's and Alembic's own constructors are called.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import re
import tokenize
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import libcst as cst
import sqlalchemy as sa
from alembic.operations import ops

from migrafix.autogen.split import Cut, cut_parts
from migrafix.codemod.api import FileFinding, FileResult, NewRevision, Options
from migrafix.codemod.positions import StatementPositions
from migrafix.codemod.reader import (
    OpaqueOp,
    ReadFunction,
    ReadRevision,
    read_revision,
    table_of,
)
from migrafix.codemod.split_parts import not_split_note, part_of
from migrafix.engine import fix_revision
from migrafix.ops import AutocommitBlockOp
from migrafix.revision import every_op, origin_of
from migrafix.rules import RULES_BY_NAME, Finding, RuleContext

if TYPE_CHECKING:
    from migrafix.codemod.part_files import Header
    from migrafix.codemod.writer import Style

__all__ = ["check_source", "fix_source", "process_source"]

_Op = TypeVar("_Op", bound=ops.MigrateOperation)

_IGNORE = re.compile(r"#\s*migrafix:\s*ignore(-file)?(?:\[([\w\-, ]+)\])?")


def fix_source(source: str, options: Options) -> FileResult:
    """The fixed source and what was found; with ``new_revisions``, the revision files to
    create beside it (autocommit work split off, as the hook writes it). Raises
    ``libcst.ParserSyntaxError`` for a file that does not parse."""
    return process_source(source, options, write=True)


def check_source(source: str, options: Options) -> tuple[FileFinding, ...]:
    """What ``fix_source`` would find, without writing the fixed code: what ``check`` needs.
    Raises ``libcst.ParserSyntaxError`` for a file that does not parse."""
    return process_source(source, options, write=False).findings


def process_source(source: str, options: Options, write: bool) -> FileResult:
    """``fix_source`` (``write``), or its findings and the ids of the revisions it would
    create, without their code (``check_source``)."""
    split = (options.naming != "database" and options.settings.split_concurrent_revisions)
    return _process(source, options, write, split=split)


def _process(source: str, options: Options, write: bool, split: bool) -> FileResult:
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
    if "lock_timeout" in source:
        _mark_lock_timeouts(read)
    dialect = _dialect(options.dialect)
    keys = options.integer_keys
    context = RuleContext(
        settings=settings,
        dialect=dialect,
        naming_convention=dict(settings.naming_convention),
        constraint_names="database" if options.naming == "database" else "convention",
        spell_option=lambda name, value: f"--{name} {value}",
        rerun="run `migrafix rewrite`",
        report_unmatched_renames=False,
        flag_look_alikes=options.naming != "database",
        separate_revisions=split,
        in_batch=lambda group: any(id(origin_of(group)) in f.batch_of
                                   for _, f in _functions(read)),
        integer_key=lambda schema, table: (keys or {}).get(f"{schema}.{table}" if schema
                                                           else table),
        integer_key_unknown=_NO_MODELS if keys is None else "",
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
    cut = cut_parts(read.upgrade.container.ops, downgrade.ops) if split else None
    split_file: _Split | None = None
    if cut is not None:
        # Imported here: only a file with autocommit work to split off needs it.
        from migrafix.codemod.part_files import read_header

        header = read_header(module)
        why_not = (options.cannot_split or (header if isinstance(header, str) else None)
                   or _control_flow(read, StatementPositions(source, module)))
        if why_not is not None:
            # The file as one revision, and a note saying why it stays one.
            whole = _process(source, options, write, split=False)
            revision = header.revision if not isinstance(header, str) else None
            note = not_split_note(revision, cut.parts(), why_not)
            return dataclasses.replace(
                whole, findings=tuple(sorted((*whole.findings, note), key=_order)))
        assert not isinstance(header, str)
        split_file = _Split(cut, header)
        # From here on the file is its main revision: the parts are files of their own.
        read.upgrade.container.ops = cut.upgrade[None]
        downgrade.ops = cut.downgrade[None]
    new_revisions: tuple[NewRevision, ...] = ()
    if split_file is not None and write:
        new_source, new_revisions = _written_split(source, read, before, options, split_file)
    elif split_file is not None:
        new_source = source
        new_revisions = tuple(NewRevision(part, f"{split_file.header.revision}_{part}", None)
                              for part in split_file.cut.parts())
    else:
        new_source = _written(source, read, before, options) if write else source

    # Positions cost a parse: only for a file with something to report.
    positions = None
    if findings or any(isinstance(op, AutocommitBlockOp) for _, f in _functions(read)
                       for op in f.container.ops):
        positions = StatementPositions(source, module)
    file_findings = [_located(f, read, positions) for f in findings]
    # (positions: only a file with an autocommit block, or findings, has any)
    if settings.rule_enabled("concurrent-index") and positions is not None \
            and not _split_off(module):
        silenced = {id(op) for op, rules in suppressed
                    if "concurrent-index" in rules or "*" in rules}
        file_findings += _autocommit_findings(read, positions, silenced)
    file_findings.sort(key=_order)
    unsplit = _process(source, options, write, split=False) if split_file is not None else None
    return FileResult(new_source, tuple(file_findings), new_revisions, unsplit)


def _control_flow(read: ReadRevision, positions: StatementPositions | None) -> str | None:
    """Why the file cannot be split: a ``return`` or ``raise`` in a function decides whether
    what follows runs (an ``if dialect == "sqlite": return`` guard), and a revision split off
    would run its part without it. None when there is none."""
    for name, function in _functions(read):
        for op in function.container.ops:
            if isinstance(op, OpaqueOp) and _ends_early(op.statement):
                line = positions.start(op.statement) if positions is not None else None
                where = f" (line {line[0]})" if line else ""
                return (f"its {name}() may stop early{where}, and a revision split off would "
                        "run without that guard")
    return None


def _ends_early(statement: cst.CSTNode) -> bool:
    found = False
    handlers = 0  # a raise in an except clause passes a failure on: the upgrade stops anyway

    class Find(cst.CSTVisitor):
        def visit_Return(self, node: cst.Return) -> None:
            nonlocal found
            found = True

        def visit_Raise(self, node: cst.Raise) -> None:
            nonlocal found
            found = found or not handlers

        def visit_ExceptHandler(self, node: cst.ExceptHandler) -> None:
            nonlocal handlers
            handlers += 1

        def leave_ExceptHandler(self, original_node: cst.ExceptHandler) -> None:
            nonlocal handlers
            handlers -= 1

        def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
            return False  # a nested function's return is its own

    statement.visit(Find())
    return found


def _order(finding: FileFinding) -> tuple[int, int, str]:
    return (finding.line, finding.column, finding.rule)


@dataclass(frozen=True)
class _Split:
    cut: Cut
    header: Header


def _written(
    source: str, read: ReadRevision, before: Mapping[str, list[object]], options: Options
) -> str:
    """The module with each function the rules changed written back."""
    from migrafix.codemod.writer import snapshot

    if all(snapshot(f.container) == before[name] for name, f in _functions(read)):
        return source  # no rule changed anything: no need to learn the file's style
    style = _style(source, read, options)
    new_module = _with_functions(read.module, _write_functions(read, before, style), style, read)
    return source if new_module is read.module else new_module.code


def _style(source: str, read: ReadRevision, options: Options) -> Style:
    from migrafix.codemod.writer import Style

    return Style(read.op_name, read.sa_name or "sa", _prefers_double_quotes(source),
                 options.dialect)


def _write_functions(
    read: ReadRevision,
    before: Mapping[str, list[object]],
    style: Style,
    elsewhere: Collection[int] = (),
    keeps_vanished: bool = True,
) -> dict[int, cst.FunctionDef]:
    """id(original function) -> the function written, for each one that changed."""
    from migrafix.codemod.writer import FunctionWriter

    rewritten = {}
    for name, function in _functions(read):
        written = FunctionWriter(function, before[name], style, elsewhere,
                                 keeps_vanished).write()
        if written is not function.function:
            rewritten[id(function.function)] = written
    return rewritten


def _with_functions(
    module: cst.Module, rewritten: Mapping[int, cst.FunctionDef], style: Style,
    read: ReadRevision,
) -> cst.Module:
    """``module`` with its functions swapped for ``rewritten`` (upgrade() and downgrade() are
    top level), and the imports the written code needs."""
    if not rewritten:
        return module
    new_module = module.with_changes(
        body=[rewritten.get(id(statement), statement) for statement in module.body])
    missing = {line for line in style.imports if not _already_imported(line, read.imported)}
    if missing:
        new_module = _with_imports(new_module, missing)
    return new_module


def _written_split(
    source: str, read: ReadRevision, before: Mapping[str, list[object]], options: Options,
    split: _Split,
) -> tuple[str, tuple[NewRevision, ...]]:
    """The file as its main revision (the parts' statements gone, ``down_revision`` naming
    ``<rev>_pre`` if there is one), and the parts as revision files of their own."""
    from migrafix.codemod import part_files

    cut, header = split.cut, split.header
    functions = dict(_functions(read))
    # the parts' statements take their comments with them
    elsewhere = {id(o) for tree in (cut.upgrade, cut.downgrade) for part in cut.parts()
                 for op in _every(tree[part]) for o in (op, origin_of(op))}
    style = _style(source, read, options)
    main = read.module
    if "pre" in cut.parts():  # first: adding imports rebuilds the module's statements
        main = part_files.with_down_revision(main, header, f"{header.revision}_pre")
    main = _with_functions(main, _write_functions(read, before, style, elsewhere), style, read)

    message = _first_line(read.module)
    new_revisions = []
    for part in cut.parts():
        part_style = _style(source, read, options)
        part_read = dataclasses.replace(read, upgrade=_part_of(functions["upgrade"],
                                                               cut.upgrade[part]),
                                        downgrade=_part_of(functions.get("downgrade"),
                                                           cut.downgrade[part]))
        written = _write_functions(part_read, before, part_style, keeps_vanished=False)
        bodies = {}
        for name, function in _functions(part_read):
            bodies[name] = written.get(id(function.function), function.function)
        module = part_files.part_module(
            read.module, header, f"{header.revision}_{part}",
            header.revision if part == "post" else None,
            cut.message(message, part), bodies)
        module = _with_functions(module, {id(f): f for f in bodies.values()}, part_style,
                                 read)
        new_revisions.append(NewRevision(part, f"{header.revision}_{part}", module.code))
    return main.code, tuple(new_revisions)


def _part_of(function: ReadFunction | None, top: list[ops.MigrateOperation]) \
        -> ReadFunction | None:
    if function is None:
        return None
    return dataclasses.replace(function, container=ops.UpgradeOps(ops=top))


def _every(top: list[ops.MigrateOperation]) -> Iterator[ops.MigrateOperation]:
    return every_op(ops.UpgradeOps(ops=top))


def _first_line(module: cst.Module) -> str:
    """The revision's message as its docstring's first line (Alembic's template) says it, as
    written in the source."""
    first = module.body[0] if module.body else None
    if (isinstance(first, cst.SimpleStatementLine) and isinstance(first.body[0], cst.Expr)
            and isinstance(first.body[0].value, cst.SimpleString)):
        literal = first.body[0].value
        opening = len(literal.prefix) + len(literal.quote)
        return literal.value[opening:].split("\n")[0].removesuffix(literal.quote).strip()
    return ""


# Where the models are not read, a table's primary key is not known: the batches of a
# computed backfill walk it.
_NO_MODELS = ("migrafix does not know the table's primary key, which batches walk: set "
              "`metadata` in [tool.migrafix] to the models' MetaData for it to read it")


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


def _mark_lock_timeouts(read: ReadRevision) -> None:
    """The statements migrafix does not read that set ``lock_timeout``: the lock-timeout rule
    leaves their transaction alone (its own lock step, read back, or the file's)."""
    for _, function in _functions(read):
        for op in every_op(function.container):
            if isinstance(op, OpaqueOp):
                op.sets_lock_timeout = "lock_timeout" in read.module.code_for_node(op.statement)


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
    them applied while alembic_version says otherwise. The blocks rules write are split off
    into revisions of their own where the file can be split: what is left here is a block
    written by hand, or one in a file that stays whole (the note says why)."""
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


def _split_off(module: cst.Module) -> bool:
    """Whether the file is a revision split off another (``<rev>_pre``, ``<rev>_post``): its
    autocommit work is written to run again after a failure, each step (the short transactions
    of a NOT NULL's ALTERs between its blocks too): what a block commits before it is meant."""
    from migrafix.codemod.part_files import read_header

    header = read_header(module)
    return not isinstance(header, str) and part_of(header.revision) is not None


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
    """``module`` with ``imports`` (lines such as ``import sqlalchemy as sa``) after its last
    import at the top, sorted, as lines of their own. (libcst's AddImportsVisitor does this
    with a matcher pass over the whole module: 0.7 s for a large revision.)"""
    body = list(module.body)
    at = 0
    for index, statement in enumerate(body):
        if _is_import(statement):
            at = index + 1
        elif at or not _is_docstring(statement):
            break
        else:
            at = index + 1  # after the docstring, should no import come first
    added = [cst.parse_statement(f"{line}\n")
             for line in sorted(imports, key=lambda line: (line.startswith("from "), line))]
    return module.with_changes(body=[*body[:at], *added, *body[at:]])


def _is_import(statement: cst.BaseStatement) -> bool:
    return isinstance(statement, cst.SimpleStatementLine) and all(
        isinstance(small, (cst.Import, cst.ImportFrom)) for small in statement.body)


def _is_docstring(statement: cst.BaseStatement) -> bool:
    return (isinstance(statement, cst.SimpleStatementLine) and len(statement.body) == 1
            and isinstance(statement.body[0], cst.Expr)
            and isinstance(statement.body[0].value, (cst.SimpleString, cst.ConcatenatedString)))
