"""Front end 2: the same rules applied to revision files that already exist."""

from migrafix.codemod.api import FileFinding, FileResult, Naming, Options
from migrafix.codemod.fixer import fix_source

__all__ = ["FileFinding", "FileResult", "Naming", "Options", "fix_source"]
