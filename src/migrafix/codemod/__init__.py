"""Front end 2: the same rules applied to revision files that already exist."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from migrafix.codemod.api import FileFinding, FileResult, Naming, NewRevision, Options

if TYPE_CHECKING:
    from migrafix.codemod.fixer import check_source, fix_source

__all__ = [
    "FileFinding", "FileResult", "Naming", "NewRevision", "Options", "check_source", "fix_source",
]


def __getattr__(name: str) -> Any:
    """``fix_source`` and ``check_source``, imported on first use: the CLI answers from its
    cache without libcst, black, SQLAlchemy or Alembic."""
    if name not in ("check_source", "fix_source"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from migrafix.codemod import fixer

    value = getattr(fixer, name)
    globals()[name] = value
    return value
