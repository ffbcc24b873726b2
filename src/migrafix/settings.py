"""Settings: ``[tool.migrafix]`` in pyproject.toml, then ``hook(...)`` arguments, then ``-x``.

Every source goes through one validator, so a misspelled key or a wrong type is an error that
names the setting and where it came from, never a silent no-op.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["ColumnRename", "Settings", "SettingsError", "TableRename", "find_pyproject"]

ConcurrentIndexes = Literal["explicit", "always"]


class SettingsError(ValueError):
    """A setting is unknown, malformed, or of the wrong type."""


@dataclass(frozen=True)
class ColumnRename:
    table: str
    old: str
    new: str

    def __str__(self) -> str:
        return f"{self.table}.{self.old}:{self.new}"


@dataclass(frozen=True)
class TableRename:
    old: str
    new: str
    schema: str | None = None  # None: the table of that name in any schema

    def __str__(self) -> str:
        if self.schema is None:
            return f"{self.old}:{self.new}"
        return f"{self.schema}.{self.old}:{self.schema}.{self.new}"


@dataclass(frozen=True)
class Settings:
    """What migrafix does; every field is documented in README.md under "Settings"."""

    select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    column_renames: tuple[ColumnRename, ...] = ()
    table_renames: tuple[TableRename, ...] = ()
    backfill: Mapping[str, str] = field(default_factory=dict)
    # Rows per transaction when a computed backfill is written as batches (PostgreSQL, MySQL):
    # the field's usual figure (strong_migrations, Django's and GitLab's batched migrations).
    backfill_batch_size: int = 10_000
    # "always": index ops on tables that exist before the revision are built and dropped
    # CONCURRENTLY (PostgreSQL); "explicit": only those the model marks so.
    concurrent_indexes: ConcurrentIndexes = "always"
    # How long a statement may wait for a lock on PostgreSQL: queries queue behind a waiting
    # ALTER, so this is how long the application may stall. Above deadlock_timeout (1 s by
    # default), after which PostgreSQL cancels an autovacuum in the way; below the 1.5 s the
    # project promises. Then up to lock_retries more tries, lock_retry_delay seconds apart.
    lock_timeout: str = "1200ms"
    lock_retries: int = 3
    lock_retry_delay: float = 5.0
    split_concurrent_revisions: bool = True
    naming_convention: Mapping[str, str] = field(default_factory=dict)
    interactive: bool = False
    # "package.module:Base.metadata": the codemod reads the project's naming convention there
    metadata: str | None = None
    # glob (relative to the pyproject.toml's folder) -> settings for the files it matches
    per_path: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def rule_enabled(self, name: str) -> bool:
        if self.select and name not in self.select:
            return False
        return name not in self.ignore

    def for_path(self, relative: str) -> Settings:
        """These settings with every ``per_path`` entry whose glob matches ``relative``
        applied, in the order written."""
        settings = self
        for pattern, raw in self.per_path.items():
            if fnmatch.fnmatch(relative, pattern):
                settings = settings.merged(raw, f"per-path {pattern!r}")
        return settings

    def merged(self, raw: Mapping[str, Any], source: str) -> Settings:
        """These settings updated by ``raw`` (a ``[tool.migrafix]``-shaped mapping).

        List settings given again replace the earlier value, except renames and backfills,
        which add up across sources (a ``-x rename=`` adds to the renames in pyproject.toml).
        """
        changes: dict[str, Any] = {}
        for key, value in raw.items():
            if key not in _PARSERS:
                known = ", ".join(sorted(_PARSERS))
                raise SettingsError(f"{source}: unknown migrafix setting {key!r} (known: {known})")
            try:
                changes.update(_PARSERS[key](value, self))
            except SettingsError as exc:
                raise SettingsError(f"{source}: setting {key!r}: {exc}") from None
        return dataclasses.replace(self, **changes)


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Sequence) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise SettingsError(f"expected a string or a list of strings, got {value!r}")


def _rule_names(value: Any) -> tuple[str, ...]:
    from migrafix.rules import RULES_BY_NAME

    names = tuple(n for item in _strings(value) for n in item.split(",") if n)
    for name in names:
        if name not in RULES_BY_NAME:
            raise SettingsError(f"unknown rule {name!r} (rules: {', '.join(RULES_BY_NAME)})")
    return names


_RENAME_FORMS = "TABLE.OLD:NEW, OLD_TABLE:NEW_TABLE or SCHEMA.OLD_TABLE:SCHEMA.NEW_TABLE"


def parse_rename(text: str) -> ColumnRename | TableRename:
    """``table.old:new`` renames a column (``schema.table.old:new`` in one schema),
    ``old_table:new_table`` a table, and ``schema.old_table:schema.new_table`` a table of one
    schema: a schema on both sides, since ``schema.old:new`` reads as a column rename."""
    left, sep, new = text.partition(":")
    if not sep or not left or not new:
        raise SettingsError(f"rename {text!r} is not {_RENAME_FORMS}")
    table, dot, old = left.rpartition(".")
    if "." in new:
        new_schema, _, new_table = new.rpartition(".")
        if not dot or not table or not old or "." in table or not new_table:
            raise SettingsError(f"rename {text!r} is not {_RENAME_FORMS}")
        if new_schema != table:
            raise SettingsError(f"rename {text!r} moves a table to another schema: a rename "
                                "keeps its schema")
        return TableRename(old, new_table, schema=table)
    if dot:
        if not table or not old:
            raise SettingsError(f"rename {text!r} is not {_RENAME_FORMS}")
        return ColumnRename(table, old, new)
    return TableRename(left, new)


def _renames(value: Any, current: Settings) -> dict[str, Any]:
    parsed = [parse_rename(item) for item in _strings(value)]
    return {
        "column_renames": current.column_renames
        + tuple(r for r in parsed if isinstance(r, ColumnRename)),
        "table_renames": current.table_renames
        + tuple(r for r in parsed if isinstance(r, TableRename)),
    }


def parse_backfill(text: str) -> tuple[str, str]:
    """``table.column=SQL`` as given on a command line."""
    target, sep, sql = text.partition("=")
    if not sep or "." not in target or not sql.strip():
        raise SettingsError(f"backfill {text!r} is not TABLE.COLUMN=SQL")
    return target, sql


def _backfill(value: Any, current: Settings) -> dict[str, Any]:
    if isinstance(value, Mapping):
        items = list(value.items())
    else:
        items = [parse_backfill(item) for item in _strings(value)]
    merged = dict(current.backfill)
    for target, sql in items:
        if not isinstance(sql, str) or "." not in target:
            raise SettingsError(f"backfill {target!r}: expected 'TABLE.COLUMN' = 'SQL expression'")
        merged[target] = sql
    return {"backfill": merged}


def _boolean(name: str) -> Any:
    def parse(value: Any, current: Settings) -> dict[str, Any]:
        if isinstance(value, bool):
            return {name: value}
        if isinstance(value, str) and value.lower() in {"true", "false", "1", "0", "yes", "no"}:
            return {name: value.lower() in {"true", "1", "yes"}}
        raise SettingsError(f"expected true or false, got {value!r}")

    return parse


def _positive_integer(name: str) -> Any:
    def parse(value: Any, current: Settings) -> dict[str, Any]:
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return {name: value}
        raise SettingsError(f"expected a positive integer, got {value!r}")

    return parse


_DURATION = re.compile(r"[1-9][0-9]*(ms|s|min)")


def _lock_timeout(value: Any, current: Settings) -> dict[str, Any]:
    if isinstance(value, str) and _DURATION.fullmatch(value.strip()):
        return {"lock_timeout": value.strip()}
    raise SettingsError(f"expected a PostgreSQL duration such as '1200ms', '2s' or '1min', "
                        f"got {value!r}")


def _retries(value: Any, current: Settings) -> dict[str, Any]:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return {"lock_retries": value}
    raise SettingsError(f"expected a number of retries (0 or more), got {value!r}")


def _seconds(value: Any, current: Settings) -> dict[str, Any]:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 3600:
        return {"lock_retry_delay": float(value)}
    raise SettingsError(f"expected seconds between 0 and 3600, got {value!r}")


def _concurrent_indexes(value: Any, current: Settings) -> dict[str, Any]:
    if value not in ("explicit", "always"):
        raise SettingsError(f"expected 'explicit' or 'always', got {value!r}")
    return {"concurrent_indexes": value}


def _metadata(value: Any, current: Settings) -> dict[str, Any]:
    if not isinstance(value, str) or ":" not in value:
        raise SettingsError(f"expected 'package.module:attribute', got {value!r}")
    return {"metadata": value}


def _per_path(value: Any, current: Settings) -> dict[str, Any]:
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, Mapping) for k, v in value.items()
    ):
        raise SettingsError(f"expected a table of glob = {{settings}}, got {value!r}")
    for pattern, raw in value.items():
        if "per_path" in raw:
            raise SettingsError(f"{pattern!r}: per_path does not nest")
        Settings().merged(raw, f"per-path {pattern!r}")  # validate now, not per file
    return {"per_path": {**current.per_path, **value}}


def _naming_convention(value: Any, current: Settings) -> dict[str, Any]:
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise SettingsError(f"expected a table of strings, got {value!r}")
    return {"naming_convention": dict(value)}


_PARSERS: dict[str, Any] = {
    "select": lambda v, s: {"select": _rule_names(v)},
    "ignore": lambda v, s: {"ignore": _rule_names(v)},
    "renames": _renames,
    "rename": _renames,  # the -x spelling: -x rename=table.old:new
    "backfill": _backfill,
    "backfill_batch_size": _positive_integer("backfill_batch_size"),
    "concurrent_indexes": _concurrent_indexes,
    "lock_timeout": _lock_timeout,
    "lock_retries": _retries,
    "lock_retry_delay": _seconds,
    "split_concurrent_revisions": _boolean("split_concurrent_revisions"),
    "naming_convention": _naming_convention,
    "interactive": _boolean("interactive"),
    "metadata": _metadata,
    "per_path": _per_path,
}


def find_upward(start: Path, name: str) -> Path | None:
    """The nearest file called ``name`` at or above ``start``."""
    for directory in (start, *start.parents):
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


def find_pyproject(start: Path) -> Path | None:
    return find_upward(start, "pyproject.toml")


def load_pyproject(path: Path) -> Mapping[str, Any]:
    with path.open("rb") as fh:
        try:
            data = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{path}: not valid TOML: {exc}") from None
    section = data.get("tool", {}).get("migrafix", {})
    if not isinstance(section, Mapping):
        raise SettingsError(f"{path}: [tool.migrafix] must be a table")
    return section


def x_arguments_to_raw(arguments: Iterable[str]) -> dict[str, Any]:
    """``-x`` arguments that are migrafix's; the rest belong to the project's env.py.

    ``rename`` and ``backfill`` may repeat. ``migrafix.KEY=VALUE`` reaches any setting and is
    validated strictly, so a misspelling there is an error rather than someone else's argument.
    """
    raw: dict[str, Any] = {}
    for argument in arguments:
        key, sep, value = argument.partition("=")
        key = key.strip()
        strict = key.startswith("migrafix.")
        key = key.removeprefix("migrafix.")
        if not strict and key not in _X_KEYS:
            continue
        if not sep:
            raise SettingsError(f"-x {argument}: expected {key}=VALUE")
        if key in ("rename", "renames", "backfill", "select", "ignore"):
            raw.setdefault(key, []).append(value)
        else:
            raw[key] = value
    return raw


_X_KEYS = frozenset({"rename", "backfill", "concurrent_indexes"})
