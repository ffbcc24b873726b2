"""Front end 2's contract: one revision file's source in, the fixed source and findings out.

The CLI (file discovery, writes, reports) is built on ``fix_source`` alone; nothing here
touches the file system, and no code from the file is ever executed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from migrafix.settings import Settings

__all__ = ["FileFinding", "FileResult", "Naming", "Options"]

Naming = Literal["auto", "convention", "database"]


@dataclass(frozen=True)
class Options:
    settings: Settings = field(default_factory=Settings)
    dialect: str = "postgresql"
    # "convention": name None constraints by the naming convention (a revision that has not
    # run anywhere); "database": by the name the database gave them when the revision ran.
    # "auto" is resolved by the CLI per file (git: uncommitted -> convention, else database).
    naming: Naming = "convention"


@dataclass(frozen=True)
class FileFinding:
    rule: str
    line: int  # 1-based
    column: int  # 1-based
    message: str
    fixable: bool  # whether `migrafix rewrite` fixes it (and did, in FileResult.source)
    # Not fixable as run, but fixable given this option ("--backfill", "--rename"): the
    # finding's message says with what value.
    fixable_with: str | None = None
    # Information, not a defect: printed as ``[note]``, and `migrafix check` does not fail on it.
    note: bool = False


@dataclass(frozen=True)
class FileResult:
    source: str  # the fixed source; identical to the input when nothing changed
    findings: tuple[FileFinding, ...]

    def changed_from(self, original: str) -> bool:
        return self.source != original
