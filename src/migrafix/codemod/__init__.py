"""Front end 2: the same rules applied to revision files that already exist."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from migrafix.codemod.api import FileFinding, FileResult, Naming, Options

if TYPE_CHECKING:
    from migrafix.codemod.fixer import fix_source

__all__ = ["FileFinding", "FileResult", "Naming", "Options", "fix_source"]


def __getattr__(name: str) -> Any:
    """``fix_source``, imported on first use: the CLI answers from its cache without libcst,
    black, SQLAlchemy or Alembic."""
    if name != "fix_source":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from migrafix.codemod.fixer import fix_source

    globals()[name] = fix_source
    return fix_source
