"""Revisions the hook split off (``<rev>_pre``, ``<rev>_post``) whose main revision is gone.

Deleting ``0002_add_total.py`` to regenerate it while ``0002_post_...py`` stays breaks the
history: the part still names ``0002`` as its ``down_revision``, and Alembic stops on a
``KeyError`` before autogenerate starts. ``migrafix check`` looks at the folders of the files it
checks and says which file to delete. Read from the files' text alone: nothing is executed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from migrafix.codemod.api import FileFinding

__all__ = ["SPLIT_REVISION", "orphaned_parts"]

SPLIT_REVISION = "split-revision"  # the finding's name: no rule, the history itself

_ASSIGNED = re.compile(
    r"""^(?P<name>revision|down_revision)[ \t]*(?::[^=\n]*)?=[ \t]*['"](?P<id>[^'"]+)['"]""",
    re.MULTILINE)
_PART = re.compile(r"^(?P<main>.+)_(?P<part>pre|post)$")


def orphaned_parts(checked: Iterable[Path]) -> list[tuple[Path, FileFinding]]:
    """Each split-off part, in the folders of ``checked``, whose main revision no file there
    holds, with a finding that says what to do."""
    found: list[tuple[Path, FileFinding]] = []
    for folder in sorted({path.parent for path in checked}):
        ids: dict[str, Path] = {}
        for path in sorted(folder.glob("*.py")):
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue  # the file's own check reports what is wrong with it
            assigned = {m["name"]: m["id"] for m in _ASSIGNED.finditer(text)}
            if "revision" in assigned:
                ids[assigned["revision"]] = path
        for revision, path in ids.items():
            part = _PART.match(revision)
            if part is None or part["main"] in ids:
                continue
            main = part["main"]
            found.append((path, FileFinding(
                SPLIT_REVISION, 1, 1,
                f"revision {revision} is the {part['part']} part of revision {main}, written "
                f"with it by migrafix's hook, and no file here holds {main} (Alembic stops on "
                f"KeyError: '{main}'): to regenerate {main}, delete this file too (rm {path}); "
                f"else restore {main}'s file",
                fixable=False)))
    return found
