"""Which files cannot hold a finding, told from their bytes without parsing them.

Parsing a file with libcst costs about a hundred times more than searching its bytes, and most
revision files of a history have nothing for any rule. ``may_have_findings`` answers False
only when ``fix_source`` is sure to report nothing and change nothing; True means "parse it".

The search runs on the file's code alone: string literals are blanked to ``""`` and comments
dropped by one regular expression (every token a rule needs is a name or keyword, never text
inside a string). Each rule acts only on ops the reader builds from an ``op.METHOD(...)`` /
``batch_op.METHOD(...)`` call whose arguments are literals (codemod/reader.py), inside
``upgrade()`` or ``downgrade()``; so each rule's necessary condition is a method name, and, for
some, a word among that call's arguments:

========================= ======================================================================
rule                      what the code must contain for the rule to find anything
========================= ======================================================================
concurrent-index          ``postgresql_concurrently`` (with ``concurrent_indexes = "always"``,
                          the default, on PostgreSQL: any ``create_index``/``drop_index``);
                          and whatever the settings, ``autocommit_block`` (the fixer's own
                          report on what such a block commits)
not-null-add              an ``.add_column(...)`` whose arguments contain ``nullable`` and
                          ``False`` (only ``nullable is False`` columns are split) and no
                          ``server_default=`` keyword of its ``Column(...)`` (unless ``None``
                          is there too); or, in one function, an ``add_column`` and an
                          ``alter_column(...)`` whose arguments contain ``nullable`` and
                          ``False`` (a column set NOT NULL after it was added nullable)
unnamed-constraint        a create/drop of a constraint or index whose arguments contain
                          ``None`` (a name left out is a TypeError: the call stays opaque); or
                          a ``create_table(...)`` with a ``...Constraint(...)`` among its
                          arguments that has no ``name=`` keyword, or ``None`` in it (an
                          unnamed explicit constraint is the only trigger for naming a new
                          table's constraints); or a constraint class imported under another
                          name
validating-constraint-add on PostgreSQL only: a ``create_foreign_key`` or
                          ``create_check_constraint``; or an ``add_column(...)`` whose
                          arguments contain ``ForeignKey``
unique-constraint-add     on PostgreSQL only: a ``create_unique_constraint``
drop-add-rename           ``drop_column`` and ``add_column`` in one function (a rename is a
                          drop and an add in the same direction); with table renames asked
                          for, ``drop_table`` and ``create_table``
lock-timeout              on PostgreSQL, in a revision that has not run (not ``--naming
                          database``): any op that may lock a table that exists (add/drop/
                          alter a column, create/drop a constraint or index, rename a table),
                          or a ``create_table(...)`` whose arguments contain ``ForeignKey``
========================= ======================================================================

A call's arguments are the text from the ``(`` after its method name to the matching ``)``.
A method name counts only after a ``.``: the reader reads only ``receiver.method(...)`` calls.
Wherever the scan cannot be sure (no ``(`` right after the name, no closing parenthesis, more
than one ``def upgrade``) it takes more text, never less: an uncertain answer is "parse it".
tests/test_prefilter.py checks the method lists against Alembic's own registry of operations
and runs every codemod fixture both ways; tests/test_corpus.py proves over 1,900 real revision
files that skipping loses no finding and changes no output.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping

from migrafix.codemod.api import Options

__all__ = [
    "CONSTRAINT_METHODS",
    "INDEX_METHODS",
    "RULE_TESTS",
    "code_only",
    "may_have_findings",
]

# Operations (and BatchOperations) methods, by what they build.
CONSTRAINT_METHODS = (
    "create_primary_key",
    "create_unique_constraint",
    "create_foreign_key",
    "create_check_constraint",
    "create_exclude_constraint",
    "drop_constraint",
)
INDEX_METHODS = ("create_index", "drop_index")

_WORD = rb"[A-Za-z0-9_]"

# A comment, or a string literal from its opening quote (a prefix such as rb stays as code).
# A backslash escapes the next character (a newline too) in raw strings as well, as far as
# where the literal ends is concerned.
_STRING_OR_COMMENT = re.compile(
    rb"#[^\r\n]*"
    rb'|"""(?:[^"\\]|\\.|"(?!""))*"""'
    rb"|'''(?:[^'\\]|\\.|'(?!''))*'''"
    rb'|"(?:[^"\\\r\n]|\\.)*"'
    rb"|'(?:[^'\\\r\n]|\\.)*'",
    re.DOTALL,
)


def code_only(data: bytes) -> bytes:
    """``data`` with every string literal replaced by ``""`` and every comment removed."""
    return _STRING_OR_COMMENT.sub(lambda m: b"" if m.group().startswith(b"#") else b'""', data)


def _methods(names: Iterable[str]) -> re.Pattern[bytes]:
    """A call of one of these methods on something: ``.`` then the name (space, a newline or a
    line continuation may come between). The reader reads only ``receiver.method(...)``: a
    project's own helper called ``create_table(...)`` (superset has them) is never an op."""
    alternatives = b"|".join(re.escape(n.encode()) for n in names)
    return re.compile(rb"\.[ \t\f\r\n\\]*(?:" + alternatives + rb")(?!" + _WORD + rb")")


_ADD_COLUMN = _methods(["add_column"])
_ALTER_COLUMN = _methods(["alter_column"])
_CREATE_TABLE = _methods(["create_table"])
_NAMED_BY_ARGUMENT = _methods([*CONSTRAINT_METHODS, *INDEX_METHODS])
_INDEX = _methods(INDEX_METHODS)
_CONSTRAINT_CLASS = re.compile(rb"Constraint(?!" + _WORD + rb")")
_CONSTRAINT_ALIAS = re.compile(rb"Constraint\s+as\s")
_NAME_KEYWORD = re.compile(rb"(?<!" + _WORD + rb")name\s*=(?!=)")
_SERVER_DEFAULT_KEYWORD = re.compile(rb"(?<!" + _WORD + rb")server_default\s*=(?!=)")
_GAP = rb"(?:[ \t\f]|\\\r?\n)+"  # what may separate `async`, `def` and the name
_FUNCTION = re.compile(
    rb"^\f*(?:async" + _GAP + rb")?def" + _GAP + rb"(upgrade|downgrade)(?!" + _WORD + rb")",
    re.MULTILINE,
)

_OPEN = frozenset(b"([{")
_CLOSE = frozenset(b")]}")
_SPACE = frozenset(b" \t\f\r\n\\")


def _arguments(code: bytes, start: int) -> bytes:
    """The code from the ``(`` after position ``start`` (just past a name) to its matching
    ``)``; the rest of the code when there is no ``(`` there or it is never closed."""
    end = len(code)
    i = start
    while i < end and code[i] in _SPACE:
        i += 1
    if i >= end or code[i] != ord("("):
        return code[start:]
    depth = 0
    for j in range(i, end):
        char = code[j]
        if char in _OPEN:
            depth += 1
        elif char in _CLOSE:
            depth -= 1
            if depth == 0:
                return code[i : j + 1]
    return code[start:]


def _calls(pattern: re.Pattern[bytes], code: bytes) -> Iterable[bytes]:
    """The arguments of every call to a name ``pattern`` matches."""
    for match in pattern.finditer(code):
        yield _arguments(code, match.end())


def _depth_at(text: bytes, position: int) -> int:
    before = text[:position]
    return sum(before.count(c) for c in (b"(", b"[", b"{")) - sum(
        before.count(c) for c in (b")", b"]", b"}"))


def _certainly_named(arguments: bytes) -> bool:
    """Whether a constraint's arguments (``(...)``) give it a name: a ``name=`` keyword of its
    own (not of a call inside it) and no ``None`` anywhere."""
    if b"None" in arguments:
        return False
    return any(_depth_at(arguments, m.start()) == 1 for m in _NAME_KEYWORD.finditer(arguments))


def _unnamed_in_create_table(arguments: bytes) -> bool:
    for match in _CONSTRAINT_CLASS.finditer(arguments):
        if not _certainly_named(_arguments(arguments, match.end())):
            return True  # also when the class is not called here: not ours to tell
    return False


class _Code:
    """A file's code, and (when they can be told apart) its upgrade() and downgrade()."""

    def __init__(self, data: bytes) -> None:
        self.code = code_only(data)
        found = list(_FUNCTION.finditer(self.code))
        names = sorted(m.group(1) for m in found)
        # Without a top-level upgrade() the fixer reads nothing.
        self.revision = b"upgrade" in names
        self.functions = [self.code]  # an odd layout: the whole file stands for each
        if names in ([b"downgrade", b"upgrade"], [b"upgrade"]):
            ends = [m.start() for m in found[1:]] + [len(self.code)]
            self.functions = [self.code[m.start() : end]
                              for m, end in zip(found, ends, strict=True)]


def _concurrent_index(code: _Code, options: Options) -> bool:
    if b"postgresql_concurrently" in code.code:
        return True
    return (
        options.settings.concurrent_indexes == "always"
        and options.dialect == "postgresql"
        and _INDEX.search(code.code) is not None
    )


def _not_null_add(code: _Code, options: Options) -> bool:
    if any(b"nullable" in a and b"False" in a and not _has_server_default(a)
           for a in _calls(_ADD_COLUMN, code.code)):
        return True
    # A column added (nullable) and later set NOT NULL in the same function.
    return any(
        _ADD_COLUMN.search(body) is not None
        and any(b"nullable" in a and b"False" in a for a in _calls(_ALTER_COLUMN, body))
        for body in code.functions
    )


def _has_server_default(arguments: bytes) -> bool:
    """Whether an add_column's column certainly has a server default (the rule leaves it
    alone): a ``server_default=`` keyword of the ``Column(...)`` inside the call, and no
    ``None`` anywhere."""
    if b"None" in arguments:
        return False
    return any(_depth_at(arguments, m.start()) == 2
               for m in _SERVER_DEFAULT_KEYWORD.finditer(arguments))


def _unnamed_constraint(code: _Code, options: Options) -> bool:
    if any(b"None" in a for a in _calls(_NAMED_BY_ARGUMENT, code.code)):
        return True
    if _CONSTRAINT_ALIAS.search(code.code):  # PK = PrimaryKeyConstraint under another name
        return True
    return any(_unnamed_in_create_table(a) for a in _calls(_CREATE_TABLE, code.code))


_VALIDATED_ADD = _methods(["create_foreign_key", "create_check_constraint"])


def _validating_constraint_add(code: _Code, options: Options) -> bool:
    if options.dialect != "postgresql":
        return False
    if _VALIDATED_ADD.search(code.code) is not None:
        return True
    return any(b"ForeignKey" in a for a in _calls(_ADD_COLUMN, code.code))


_UNIQUE_ADD = _methods(["create_unique_constraint"])


def _unique_constraint_add(code: _Code, options: Options) -> bool:
    return options.dialect == "postgresql" and _UNIQUE_ADD.search(code.code) is not None


def _drop_add_rename(code: _Code, options: Options) -> bool:
    for body in code.functions:
        if b"drop_column" in body and b"add_column" in body:
            return True
        if options.settings.table_renames and b"drop_table" in body and b"create_table" in body:
            return True
    return False


# Every op that may lock a table that exists before the revision. A new table locks only the
# tables its foreign keys refer to; a dropped one too, known only from its twin create_table.
_LOCKING = _methods([
    "add_column", "drop_column", "alter_column", "rename_table",
    *CONSTRAINT_METHODS, *INDEX_METHODS,
])


def _lock_timeout(code: _Code, options: Options) -> bool:
    # a revision that has run is history: the rule leaves it as it is
    if options.dialect != "postgresql" or options.naming == "database":
        return False
    return _LOCKING.search(code.code) is not None or any(
        b"ForeignKey" in a for a in _calls(_CREATE_TABLE, code.code))


RuleTest = Callable[[_Code, Options], bool]

#: Per rule: whether a file may hold something for it. Every rule has its entry
#: (tests/test_prefilter.py says so): the rules themselves are not imported here, since
#: importing them imports Alembic and SQLAlchemy, 0.45 s, more than a run that skips every
#: file costs in all.
RULE_TESTS: Mapping[str, RuleTest] = {
    "concurrent-index": _concurrent_index,
    "not-null-add": _not_null_add,
    "unnamed-constraint": _unnamed_constraint,
    "validating-constraint-add": _validating_constraint_add,
    "unique-constraint-add": _unique_constraint_add,
    "drop-add-rename": _drop_add_rename,
    "lock-timeout": _lock_timeout,
}


def may_have_findings(data: bytes, options: Options) -> bool:
    """False only if ``fix_source`` of these bytes (UTF-8) with ``options`` finds nothing and
    changes nothing, whatever the file's ``# migrafix: ignore`` comments say."""
    if b"upgrade" not in data:  # the fixer reads only files with an upgrade()
        return False
    code = _Code(data)
    if not code.revision:
        return False
    if b"autocommit_block" in code.code:  # reported by the fixer itself, whatever rules run
        return True
    return any(test(code, options) for name, test in RULE_TESTS.items()
               if options.settings.rule_enabled(name))
