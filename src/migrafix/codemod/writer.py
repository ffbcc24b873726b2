"""The rewritten op trees, written back into the file with the smallest change.

- An op the rules left alone is its original statement, byte for byte, comments included.
- An op a rule derived from an original (a name given, ``nullable`` relaxed, a keyword
  added) is the original statement with that one argument edited.
- Anything new is rendered by Alembic's own renderer and black-formatted, in the file's quote
  style; a new ``with`` block reuses the original header where there is one.
- No comment is lost: those of a statement a rule removed (a drop folded into a rename) go
  above the next statement written from further down the file, or to the function's end.
"""

from __future__ import annotations

import io
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import libcst as cst
import sqlalchemy as sa
from alembic.autogenerate.api import AutogenContext
from alembic.autogenerate.render import render_op
from alembic.operations import ops
from alembic.runtime.migration import MigrationContext

from migrafix.codemod.reader import OpaqueOp, ReadFunction
from migrafix.engine import HiddenOp
from migrafix.ops import AutocommitBlockOp, BackfillOp, CommentOp, wrap_comment
from migrafix.revision import every_op, origin_of
from migrafix.rules.unnamed_constraint import NameLookup, same_item

__all__ = ["FunctionWriter", "Style"]


@dataclass
class Style:
    """How the file writes code: what it calls op and sqlalchemy, its quotes."""

    op_name: str
    sa_name: str
    double_quotes: bool
    dialect: str
    imports: set[str] = field(default_factory=set)  # import lines rendered code needs


class FunctionWriter:
    """Writes ``read.container``'s ops as ``read.function``.

    ``elsewhere``: ids of ops written in another file (a part split off into a revision of
    its own), whose statements take their comments with them. ``keeps_vanished``: whether the
    comments of statements whose op is gone come here (the main revision's file; a part's
    file has only its own).
    """

    def __init__(
        self,
        read: ReadFunction,
        before: list[object],
        style: Style,
        elsewhere: Collection[int] = (),
        keeps_vanished: bool = True,
    ) -> None:
        self.read = read
        self.before = before  # snapshot() of the trees before the rules ran
        self.original_groups = {entry[0]: list(entry[1]) for entry in before
                                if isinstance(entry, tuple)}
        self.style = style
        self.pending_comments: list[str] = []
        self._headers_used: set[int] = set()  # batch headers already written once
        self.markers: list[cst.EmptyLine] = []  # Alembic's marker lines found in moved code
        self.carried: set[int] = set()  # statements whose comments a replacement took over
        self.pending_lines: list[cst.EmptyLine] = []  # a vanished statement's comment lines
        self._autogen: AutogenContext | None = None
        self.order = _source_order(read.function)
        # Statements whose op a rule removed (a drop folded into a rename): their comments go
        # above the first statement written from further down the file, in their order.
        self.vanished = _vanished(read, self.order, elsewhere) if keeps_vanished else []
        # Columns a rule now fills: the TODO an earlier run left for each is done.
        self.filled = {(op.table_name, op.column_name) for op in every_op(read.container)
                       if isinstance(op, BackfillOp)}

    def write(self) -> cst.FunctionDef:
        function = self.read.function
        if snapshot(self.read.container) == self.before:
            return function  # nothing moved, nothing new: not a byte changes
        statements: list[cst.BaseStatement] = []
        for op in self.read.container.ops:
            statements += self._top(op)
        # Alembic's marker stays where it is; if the statement it was above moved into a block
        # or is gone, it opens the body instead.
        top_ids = {id(s) for s in statements}
        for original in self.read.statement_of.values():
            if id(original) in top_ids or id(original) in self.carried:
                continue
            for line in getattr(original, "leading_lines", ()):
                if _is_marker(line) and all(line is not m for m in self.markers):
                    self.markers.append(line)
        originals = {id(s) for s in self.read.statement_of.values()}
        if not statements:  # all of it went to another revision: Alembic writes `pass`
            statements = [cst.SimpleStatementLine([cst.Pass()])]
        statements = _markers_first(statements, self.markers, originals)
        statements = [*self.read.preamble, *statements]
        body = function.body
        assert isinstance(body, cst.IndentedBlock)
        footer = list(body.footer)
        self.pending_lines = [*self._vanished_before(len(self.order)), *self.pending_lines]
        if self.pending_comments or self.pending_lines:
            footer = [*self.pending_lines, *(_comment_line(c) for c in self.pending_comments),
                      *footer]
        return function.with_changes(body=body.with_changes(body=statements, footer=footer))

    # --- top level ------------------------------------------------------------------------

    def _top(self, op: ops.MigrateOperation) -> list[cst.BaseStatement]:
        if isinstance(op, ops.ModifyTableOps):
            return self._group(op)
        if isinstance(op, AutocommitBlockOp):
            return self._autocommit(op)
        return self._leaf(op, receiver=self.style.op_name)

    def _group(self, group: ops.ModifyTableOps) -> list[cst.BaseStatement]:
        origin = origin_of(group)
        batch = self.read.batch_of.get(id(origin))
        if batch is None:
            out: list[cst.BaseStatement] = []
            for op in group.ops:
                out += self._leaf(op, receiver=self.style.op_name)
            return out
        if group is origin and _ops_ids(group) == self.original_groups.get(id(group)):
            return [self._with_comments(batch, self._vanished_before_statement(batch))]
        alias = batch.items[0].asname.name.value  # type: ignore[union-attr]
        inner: list[cst.BaseStatement] = []
        for op in group.ops:
            inner += self._leaf(op, receiver=alias, batch=True)
        inner = _without_markers(inner, self.markers)
        if not inner:
            self._adopt_comments_of(origin)
            return []
        first_use = id(origin) not in self._headers_used
        self._headers_used.add(id(origin))
        new_with = batch.with_changes(
            body=batch.body.with_changes(body=inner),
            leading_lines=batch.leading_lines if first_use else (),
        )
        return [self._with_comments(new_with)]

    def _adopt_comments_of(self, group: ops.MigrateOperation) -> None:
        """A batch block written as nothing (its ops moved or went): the comments above it go
        on the next statement written, Alembic's marker to the top. Once per block."""
        if id(group) in self._headers_used:
            return
        self._headers_used.add(id(group))
        lines = self.read.batch_of[id(group)].leading_lines
        self.pending_lines += [line for line in lines if not _is_marker(line)]
        self.markers += [line for line in lines if _is_marker(line)]

    def _autocommit(self, block: AutocommitBlockOp) -> list[cst.BaseStatement]:
        original = self.read.statement_of.get(id(block))
        for op in block.ops:  # comments above a batch block this block emptied come along
            group = self.read.group_of.get(id(origin_of(op)))
            if group is not None and not group.ops:
                self._adopt_comments_of(group)
        inner: list[cst.BaseStatement] = []
        for op in block.ops:
            inner += self._leaf(op, receiver=self.style.op_name, nested=True)
        inner = _without_markers(inner, self.markers)
        self.pending_comments += wrap_comment(block.comment)
        if isinstance(original, cst.With):
            return [self._with_comments(original.with_changes(
                body=original.body.with_changes(body=inner)))]
        header = cst.parse_statement(
            f"with {self.style.op_name}.get_context().autocommit_block():\n    pass\n"
        )
        assert isinstance(header, cst.With)
        return [self._with_comments(header.with_changes(
            body=header.body.with_changes(body=inner)))]

    # --- one op ---------------------------------------------------------------------------

    def _leaf(
        self, op: ops.MigrateOperation, *, receiver: str, batch: bool = False,
        nested: bool = False,
    ) -> list[cst.BaseStatement]:
        if isinstance(op, CommentOp):
            if not op.advisory:
                self.pending_comments += list(op.lines)
            return []
        if isinstance(op, HiddenOp):  # pragma: no cover - unmasked before writing
            raise AssertionError("a hidden op reached the writer")
        statement = self.read.statement_of.get(id(op))
        origin = origin_of(op)
        origin_statement = self.read.statement_of.get(id(origin))
        earlier = self._vanished_before_statement(origin_statement)
        kept_as_is = isinstance(op, OpaqueOp) or self._same_receiver(op, receiver)
        if statement is not None and kept_as_is:
            return [self._with_comments(statement, earlier)]
        if origin is not op and self._same_receiver(origin, receiver):
            edited = self._edited(op, origin, receiver)
            if edited is not None:
                # its comments (Alembic's marker too) are the original's, copied
                self.carried.add(id(origin_statement))
                return [self._with_comments(edited, earlier)]
        rendered = list(self._rendered(op, batch, receiver, nested or batch))
        if not rendered:
            self.pending_lines = [*earlier, *self.pending_lines]
            return []
        carried: Sequence[cst.EmptyLine] = ()
        if origin is not op and origin_statement is not None:
            # What was written above the statement this op replaces stays above it.
            self.carried.add(id(origin_statement))
            carried = getattr(origin_statement, "leading_lines", ())
        rendered[0] = rendered[0].with_changes(leading_lines=[
            *earlier, *carried, *getattr(rendered[0], "leading_lines", ())])
        return [self._with_comments(s) for s in rendered]

    def _same_receiver(self, op: ops.MigrateOperation, receiver: str) -> bool:
        call = self.read.call_of.get(id(op))
        return call is not None and call.func.value.value == receiver  # type: ignore[attr-defined]

    def _edited(
        self, op: ops.MigrateOperation, origin: ops.MigrateOperation, receiver: str
    ) -> cst.BaseStatement | None:
        statement = self.read.statement_of.get(id(origin))
        call = self.read.call_of.get(id(origin))
        if statement is None or call is None:
            return None
        new_call = _edit_call(op, origin, call, receiver, self.read.arguments_of.get(id(origin)),
                              self.style)
        if new_call is None:
            return None
        edited: cst.BaseStatement = statement.deep_replace(call, new_call)  # type: ignore[arg-type]
        if getattr(origin, "constraint_name", "") is None:
            # Alembic's "constraint name is None" warning above it is no longer true.
            edited = edited.with_changes(leading_lines=[
                line for line in getattr(edited, "leading_lines", ())
                if line.comment is None or line.comment.value not in _UNNAMED_WARNING])
        if any(isinstance(getattr(op, a, None), NameLookup) for a in _NAME_ATTRIBUTES):
            edited = self._looked_up(edited)
        return edited

    def _looked_up(self, statement: cst.BaseStatement) -> cst.BaseStatement:
        """A drop whose name is now found at run time: the lookup is written in place of
        ``None``, and the statement, too long for one line now, black-formatted in the
        file's quote style; it needs ``sqlalchemy`` under the name the lookup uses."""
        import black

        self.style.imports.add(f"import sqlalchemy as {self.style.sa_name}")
        mode = black.Mode(string_normalization=self.style.double_quotes)
        code = cst.Module(body=[]).code_for_node(statement)
        formatted = black.format_str(code, mode=mode)
        return cst.parse_statement(formatted)

    def _rendered(
        self, op: ops.MigrateOperation, batch: bool, receiver: str, nested: bool = False
    ) -> Sequence[cst.BaseStatement]:
        context = self._context()
        if batch:
            with context._within_batch():
                lines = render_op(context, op)
        else:
            lines = render_op(context, op)
        # Rendered where it goes (``nested``: in a block's body): libcst indents the code,
        # not the lines of a string the code spans (an SQL text rendered as is).
        as_is = getattr(op, "rendered_as_is", False)
        wrapped = as_is and nested
        code = _indented(["if True:", *lines] if wrapped else lines)
        if batch and receiver != "batch_op":
            code = code.replace("batch_op.", f"{receiver}.")
        self.style.imports |= set(context.imports)
        if f"{self.style.sa_name}." in code:
            self.style.imports.add(f"import sqlalchemy as {self.style.sa_name}")
        if as_is:  # already as black >= 25 writes it
            formatted = code + "\n"
        else:
            import black  # a tenth of a second to import: only once something is rendered

            mode = black.Mode(string_normalization=self.style.double_quotes)
            formatted = black.format_str(code + "\n", mode=mode)
        module = cst.parse_module(formatted)
        body: list[cst.BaseStatement] = list(module.body)
        if wrapped:
            assert isinstance(body[0], cst.If) and isinstance(body[0].body, cst.IndentedBlock)
            body = list(body[0].body.body)
        header = [line for line in module.header if line.comment is not None]
        if header and body:  # a comment the code opens with: libcst holds it as the header
            body[0] = body[0].with_changes(
                leading_lines=[*header, *getattr(body[0], "leading_lines", ())])
        return body

    def _context(self) -> AutogenContext:
        if self._autogen is None:
            self._autogen = AutogenContext(
                MigrationContext.configure(dialect_name=self.style.dialect),
                opts={
                    "sqlalchemy_module_prefix": f"{self.style.sa_name}.",
                    "alembic_module_prefix": f"{self.style.op_name}.",
                    "user_module_prefix": None,
                },
            )
        return self._autogen

    def _with_comments(
        self, statement: cst.BaseStatement, earlier: Sequence[cst.EmptyLine] = ()
    ) -> cst.BaseStatement:
        """``statement`` with the comments waiting for the next statement: ``earlier`` (a
        vanished statement's, from above it in the file) before its own, the rest after."""
        leading = list(getattr(statement, "leading_lines", ()))
        if self.filled:
            kept = _without_done_todos(leading, self.filled)
            if len(kept) != len(leading):
                statement, leading = statement.with_changes(leading_lines=kept), kept
        if not self.pending_comments and not self.pending_lines and not earlier:
            return statement
        comments = [*self.pending_lines, *(_comment_line(c) for c in self.pending_comments)]
        self.pending_comments = []
        self.pending_lines = []
        return statement.with_changes(leading_lines=[*earlier, *leading, *comments])

    def _vanished_before_statement(
        self, statement: cst.BaseStatement | None
    ) -> list[cst.EmptyLine]:
        if statement is None or id(statement) not in self.order:
            return []
        return self._vanished_before(self.order[id(statement)])

    def _vanished_before(self, position: int) -> list[cst.EmptyLine]:
        """The comment lines of vanished statements above ``position``, taken once."""
        lines: list[cst.EmptyLine] = []
        while self.vanished and self.vanished[0][0] < position:
            lines += self.vanished.pop(0)[1]
        return lines


_TODO = re.compile(r"# TODO\(migrafix\): fill (\S+)\.(\w+) before it becomes NOT NULL")


def _indented(lines: Sequence[str]) -> str:
    """Rendered lines indented as Alembic's printer indents them in a revision (a line ending
    in ":" opens a block, a blank line closes it): a loop or a ``try`` renders so."""
    if not any(line.rstrip().endswith(":") for line in lines):
        return "\n".join(lines)
    from mako.pygen import PythonPrinter  # type: ignore[import-untyped]  # Alembic's own printer

    buffer = io.StringIO()
    printer = PythonPrinter(buffer)
    for line in lines:
        printer.writeline(line)
    printer.close()
    return buffer.getvalue()


def _without_done_todos(
    lines: list[cst.EmptyLine], filled: set[tuple[str, str]]
) -> list[cst.EmptyLine]:
    """``lines`` without the TODO block not-null-add wrote for a column it now fills: from its
    first line to the one spelling the backfill option for that column. A block that does not
    end so (edited by hand) is kept whole."""
    for start, line in enumerate(lines):
        match = _TODO.match(line.comment.value) if line.comment is not None else None
        if match is None or (match[1], match[2]) not in filled:
            continue
        option = re.compile(rf"backfill[ =]{re.escape(match[1])}\.{re.escape(match[2])}=")
        for end in range(start + 1, min(start + 9, len(lines))):
            comment = lines[end].comment
            if comment is None:
                break
            if option.search(comment.value):
                return [*lines[:start], *lines[end + 1:]]
    return lines


def _source_order(function: cst.FunctionDef) -> dict[int, int]:
    """id(statement) -> its place in the function, reading down the file (``with`` blocks'
    statements after their header)."""
    order: dict[int, int] = {}

    def visit(statements: Sequence[cst.BaseStatement]) -> None:
        for statement in statements:
            order[id(statement)] = len(order)
            body = getattr(statement, "body", None)
            if isinstance(statement, cst.With) and isinstance(body, cst.IndentedBlock):
                visit(body.body)

    if isinstance(function.body, cst.IndentedBlock):
        visit(function.body.body)
    return order


def _vanished(
    read: ReadFunction, order: dict[int, int], elsewhere: Collection[int]
) -> list[tuple[int, list[cst.EmptyLine]]]:
    """(place, comment lines) of each statement whose op no longer is in the tree, nor is any
    op derived from it, nor written ``elsewhere``: its comments above it, and the one at the
    end of its line. Alembic's marker is not among them (``write`` keeps it where it
    belongs)."""
    present: set[int] = set(elsewhere)
    for op in every_op(read.container):
        present |= {id(op), id(origin_of(op))}
    found = []
    for op in read.alive:
        statement = read.statement_of.get(id(op))
        if (statement is None or id(op) in present or id(statement) not in order
                or isinstance(op, (ops.ModifyTableOps, AutocommitBlockOp))):
            continue
        lines = [line for line in getattr(statement, "leading_lines", ())
                 if line.comment is not None and not _is_marker(line)]
        trailing = getattr(getattr(statement, "trailing_whitespace", None), "comment", None)
        if trailing is not None:
            lines.append(cst.EmptyLine(comment=trailing))
        if lines:
            found.append((order[id(statement)], lines))
    return sorted(found, key=lambda entry: entry[0])


def _without_markers(
    statements: Sequence[cst.BaseStatement], markers: list[cst.EmptyLine]
) -> list[cst.BaseStatement]:
    """``statements`` without Alembic's marker lines, which are added to ``markers``."""
    kept: list[cst.BaseStatement] = []
    for statement in statements:
        lines = list(getattr(statement, "leading_lines", ()))
        mine = [line for line in lines if _is_marker(line)]
        if mine:
            markers += mine
            statement = statement.with_changes(
                leading_lines=[line for line in lines if not _is_marker(line)])
        kept.append(statement)
    return kept


def _markers_first(
    statements: list[cst.BaseStatement], markers: list[cst.EmptyLine], originals: set[int]
) -> list[cst.BaseStatement]:
    """Alembic's ``# ### commands auto generated ...`` line opens its commands. ``markers``
    (those whose statement moved or went) go first; a marker still in place moves up only
    past statements migrafix inserted, never past the file's own (a guard above it stays)."""
    kept = list(statements)
    carrier = next((i for i, s in enumerate(kept)
                    if any(_is_marker(line) for line in getattr(s, "leading_lines", ()))), None)
    if carrier is not None:
        if carrier == 0 or any(id(s) in originals for s in kept[:carrier]):
            return kept
        markers = [line for line in getattr(kept[carrier], "leading_lines", ()) if _is_marker(line)]
        kept = _without_markers(kept, [])
    if markers and kept:
        first = kept[0]
        kept[0] = first.with_changes(
            leading_lines=[*markers, *getattr(first, "leading_lines", ())])
    return kept


def _is_marker(line: cst.EmptyLine) -> bool:
    return line.comment is not None and line.comment.value.startswith("# ###")


def _comment_line(text: str) -> cst.EmptyLine:
    return cst.EmptyLine(comment=cst.Comment(f"# {text}" if text else "#"))


def _ops_ids(group: ops.ModifyTableOps) -> list[int]:
    return [id(op) for op in group.ops]


def snapshot(container: ops.OpContainer) -> list[object]:
    """The trees' shape: top level op ids, and each group's op ids. Taken before the rules
    run; ``write`` compares it with the shape after."""
    shape: list[object] = []
    for op in container.ops:
        if isinstance(op, (ops.ModifyTableOps, AutocommitBlockOp)):
            shape.append((id(op), tuple(id(inner) for inner in op.ops)))
        else:
            shape.append(id(op))
    return shape


# --- surgical edits ---------------------------------------------------------------------------

_NAME_KEYWORDS = ("constraint_name", "index_name", "name")
_NAME_ATTRIBUTES = ("constraint_name", "index_name")
# The comment Alembic (1.20 and later) writes above a `drop_constraint(None, ...)`. Written out
# here, not only imported: a file may come from a newer Alembic than the one installed, and
# older ones do not have the constant.
_UNNAMED_WARNING = frozenset((
    "# WARNING: constraint name is None; this directive will fail as",
    "# rendered.  Add a name, or use a naming convention; see",
    "# https://alembic.sqlalchemy.org/en/latest/naming.html",
))
try:
    from alembic.autogenerate.render import _UNNAMED_CONSTRAINT_WARNING
except ImportError:  # Alembic before the warning
    pass
else:  # should Alembic reword it, the new words are known as well
    _UNNAMED_WARNING |= frozenset(_UNNAMED_CONSTRAINT_WARNING)


def _edit_call(
    op: ops.MigrateOperation,
    origin: ops.MigrateOperation,
    call: cst.Call,
    receiver: str,
    arguments: list[tuple[cst.Arg, Any]] | None,
    style: Style,
) -> cst.Call | None:
    """``call`` with the one change that turns ``origin`` into ``op``; None if the difference
    is not one of the edits known here."""
    double_quotes = style.double_quotes
    if not isinstance(op, type(origin)):  # a subclass (NotValidCheckOp) is the same call
        return None
    if isinstance(op, ops.CreateTableOp):
        return _name_table_constraints(op, call, receiver, arguments or [], style.double_quotes)
    if isinstance(op, ops.AddColumnOp):
        assert isinstance(origin, ops.AddColumnOp)
        if origin.column.nullable is False and op.column.nullable is True:
            return _set_column_nullable(call)
        default = op.column.server_default
        if origin.column.server_default is None and isinstance(default, sa.DefaultClause) \
                and isinstance(default.arg, sa.TextClause):
            text = _string_literal(default.arg.text, double_quotes)
            style.imports.add(f"import sqlalchemy as {style.sa_name}")
            return _with_column_keyword(
                call, "server_default", cst.parse_expression(f"{style.sa_name}.text({text})"))
        return None
    name_attribute = "index_name" if isinstance(op, (ops.CreateIndexOp, ops.DropIndexOp)) \
        else "constraint_name"
    new_call = call
    if getattr(op, name_attribute, None) != getattr(origin, name_attribute, None):
        name = _name_expression(receiver, getattr(op, name_attribute), style)
        new_call = _set_name_argument(new_call, name)
    added = {k: v for k, v in getattr(op, "kw", {}).items()
             if k not in getattr(origin, "kw", {})}
    added |= {k: True for k in ("if_not_exists", "if_exists")  # blocks.concurrent_builds
              if getattr(op, k, None) and not getattr(origin, k, None)}
    for keyword, value in added.items():
        new_call = _append_keyword(new_call, keyword, cst.parse_expression(repr(value)))
    return new_call if new_call is not call else None


def _name_expression(receiver: str, name: str | NameLookup, style: Style) -> cst.BaseExpression:
    """``op.f("name")``, or the run-time lookup of a name the database chose."""
    if isinstance(name, NameLookup):
        return cst.parse_expression(name.code(style.op_name, style.sa_name))
    return _f_call(receiver, name, style.double_quotes)


def _f_call(receiver: str, name: str, double_quotes: bool) -> cst.Call:
    quoted = f'"{name}"' if double_quotes and '"' not in name else repr(str(name))
    return cst.Call(func=cst.Attribute(cst.Name(receiver), cst.Name("f")),
                    args=[cst.Arg(cst.SimpleString(quoted))])


def _set_name_argument(call: cst.Call, name: cst.BaseExpression) -> cst.Call:
    args = list(call.args)
    for index, arg in enumerate(args):
        if arg.keyword is not None and arg.keyword.value in _NAME_KEYWORDS:
            args[index] = arg.with_changes(value=name)
            return call.with_changes(args=args)
    for index, arg in enumerate(args):
        if arg.keyword is None:
            args[index] = arg.with_changes(value=name)
            return call.with_changes(args=args)
    return call


def _append_keyword(call: cst.Call, keyword: str, value: cst.BaseExpression) -> cst.Call:
    """``call`` with ``keyword=value`` as its last argument, laid out like the arguments
    before it: on its own line when they are, and the closing parenthesis where it was."""
    new = cst.Arg(keyword=cst.Name(keyword), value=value,
                  equal=cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""),
                                        whitespace_after=cst.SimpleWhitespace("")))
    args = list(call.args)
    if not args:
        return call.with_changes(args=[new])
    last = args[-1]
    between = args[-2].comma if len(args) >= 2 else cst.MaybeSentinel.DEFAULT
    if not isinstance(between, cst.Comma):
        between = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
    args[-1] = last.with_changes(comma=between, whitespace_after_arg=cst.SimpleWhitespace(""))
    args.append(new.with_changes(comma=last.comma, whitespace_after_arg=last.whitespace_after_arg))
    return call.with_changes(args=args)


def _string_literal(text: str, double_quotes: bool) -> str:
    """``text`` as a Python string literal in the file's quote style, where the text allows."""
    quoted = repr(text)
    if double_quotes and quoted.startswith("'") and '"' not in text and "\\" not in quoted:
        return f'"{text}"'
    return quoted


def _with_column_keyword(
    call: cst.Call, keyword: str, value: cst.BaseExpression
) -> cst.Call | None:
    """``call`` (an ``add_column``) with ``keyword=value`` added to its ``Column(...)``."""
    for arg in call.args:
        column = arg.value
        if isinstance(column, cst.Call) and _callee_name(column) == "Column":
            new_column = _append_keyword(column, keyword, value)
            return call.with_changes(
                args=[a.with_changes(value=new_column) if a is arg else a for a in call.args])
    return None


def _set_column_nullable(call: cst.Call) -> cst.Call | None:
    for arg in call.args:
        column = arg.value
        if isinstance(column, cst.Call) and _callee_name(column) == "Column":
            for inner in column.args:
                if inner.keyword is not None and inner.keyword.value == "nullable":
                    new_inner = inner.with_changes(value=cst.Name("True"))
                    new_column = column.with_changes(
                        args=[new_inner if a is inner else a for a in column.args])
                    return call.with_changes(
                        args=[a.with_changes(value=new_column) if a is arg else a
                              for a in call.args])
    return None


def _callee_name(call: cst.Call) -> str | None:
    func = call.func
    if isinstance(func, cst.Attribute):
        return func.attr.value
    if isinstance(func, cst.Name):
        return func.value
    return None


def _name_table_constraints(
    op: ops.CreateTableOp, call: cst.Call, receiver: str,
    arguments: list[tuple[cst.Arg, Any]], double_quotes: bool,
) -> cst.Call | None:
    named = [item for item in op.columns if isinstance(item, sa.Constraint)]
    changed = False
    new_args = []
    for arg, value in arguments:
        if (isinstance(value, sa.Constraint) and value.name is None
                and isinstance(arg.value, cst.Call)):
            twin = next((c for c in named if same_item(c, value)), None)
            if twin is not None and twin.name is not None:
                constraint_call = arg.value
                new_constraint = _append_keyword(
                    constraint_call, "name", _f_call(receiver, str(twin.name), double_quotes))
                new_args.append(arg.with_changes(value=new_constraint))
                changed = True
                continue
        new_args.append(arg)
    return call.with_changes(args=new_args) if changed else None
