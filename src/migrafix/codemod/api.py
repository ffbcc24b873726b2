"""Front end 2's contract: one revision file's source in, the fixed source and findings out.

The CLI (file discovery, writes, reports) is built on ``fix_source`` alone; nothing here
touches the file system, and no code from the file is ever executed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from migrafix.settings import Settings

__all__ = ["FileFinding", "FileResult", "Naming", "NewRevision", "Options"]

Naming = Literal["auto", "convention", "database"]


@dataclass(frozen=True)
class Options:
    settings: Settings = field(default_factory=Settings)
    dialect: str = "postgresql"
    # "convention": name None constraints by the naming convention (a revision that has not
    # run anywhere); "database": by the name the database gave them when the revision ran.
    # "auto" is resolved by the CLI per file (git: uncommitted -> convention, else database).
    naming: Naming = "convention"
    # Why the parts the rules mark to run as revisions of their own (``<rev>_pre``,
    # ``<rev>_post``: autocommit work) cannot be written as files beside this one ("read from
    # standard input"): they stay in the file, in the form safe in one revision, and a note
    # says why. None: they are written as files, as the hook writes them, in a revision that
    # has not run (not ``naming="database"``) unless ``split_concurrent_revisions`` is off.
    cannot_split: str | None = None
    # The single integer primary key of each table ("table" or "schema.table" -> column), from
    # the models (the ``metadata`` setting): what a backfill in batches walks. None: the
    # models are not read.
    integer_keys: Mapping[str, str] | None = None


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
class NewRevision:
    """A revision file the fix adds beside the file: work split off to run in a revision of
    its own, as the hook writes it. Its ``down_revision`` chains it: ``<rev>_pre`` takes the
    file's, the file's becomes ``<rev>_pre``; ``<rev>_post`` follows ``<rev>``."""

    part: Literal["pre", "post"]
    revision: str  # "<rev>_pre" / "<rev>_post"
    source: str | None  # None where only the findings were computed (``check_source``)


@dataclass(frozen=True)
class FileResult:
    source: str  # the fixed source; identical to the input when nothing changed
    findings: tuple[FileFinding, ...]
    # Revision files to create beside it, written before ``source`` (which names them).
    new_revisions: tuple[NewRevision, ...] = ()
    # With ``new_revisions``: the file fixed as one revision, what is written where they
    # cannot be (another revision already follows this one: see codemod/split_parts.py).
    unsplit: FileResult | None = None

    def changed_from(self, original: str) -> bool:
        return self.source != original
