"""Split-off revisions (``<rev>_pre``, ``<rev>_post``) as files in a folder of revisions.

The hook writes autocommit work as revisions of their own, and so does ``migrafix rewrite``
(beside a revision file that has not run). This module is the folder's side of it, read from
the files' text alone (nothing is executed):

- the name of a part's file, from its revision's (``part_path``);
- what stands in the way of writing one (``Folder.obstacle``): another revision that already
  follows the revision (the split falls back to one revision: ``not_split_note``), or a file
  that is not the part at the part's name or id (an error: nothing is written);
- parts whose main revision is gone (``orphaned_parts``): deleting ``0002_add_total.py`` to
  regenerate it while ``0002_post_...py`` stays breaks the history: the part still names
  ``0002`` as its ``down_revision``, and Alembic stops on a ``KeyError`` before autogenerate
  starts. ``migrafix check`` looks at the folders of the files it checks and says which file
  to delete.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from migrafix.codemod.api import FileFinding
from migrafix.codemod.files import revision_of

__all__ = [
    "SPLIT_REVISION",
    "Folder",
    "not_split_note",
    "orphaned_parts",
    "part_of",
    "part_path",
]

SPLIT_REVISION = "split-revision"  # the finding's name: no rule, the history itself

Part = Literal["pre", "post"]

_DOWN_REVISION = re.compile(rb"^down_revision[ \t]*(?::[^=\r\n]*)?=[ \t]*", re.MULTILINE)
_QUOTED = re.compile(rb"""['"]([^'"\r\n]+)['"]""")
_PART = re.compile(r"^(?P<main>.+)_(?P<part>pre|post)$")


def part_of(revision: str | None) -> tuple[str, Part] | None:
    """(main revision, part) of a split-off revision's id: "0002_post" -> ("0002", "post")."""
    match = _PART.match(revision) if revision else None
    return (match["main"], match["part"]) if match else None  # type: ignore[return-value]


def _down_revisions(data: bytes) -> tuple[str, ...]:
    """The ids ``down_revision`` names: one string, a tuple or list of them (over lines too),
    or none."""
    match = _DOWN_REVISION.search(data)
    if match is None:
        return ()
    rest = data[match.end():]
    if rest[:1] in (b"(", b"["):
        closing = rest.find(b")" if rest[:1] == b"(" else b"]")
        value = rest[: closing if closing >= 0 else len(rest)]
    else:
        value = rest.split(b"\n", 1)[0]
    return tuple(v.decode("utf-8", "replace") for v in _QUOTED.findall(value))


def part_path(path: Path, revision: str, part: Part) -> Path:
    """Where the part of the revision in ``path`` goes: the id's part suffix right after the
    id when the name starts with it (``abc123_add_total.py`` -> ``abc123_post_add_total.py``),
    else at the end of the name (``<stem>_post.py``)."""
    stem, suffix = path.stem, path.suffix or ".py"
    if stem.startswith(revision):
        name = f"{revision}_{part}{stem[len(revision):]}{suffix}"
    else:
        name = f"{stem}_{part}{suffix}"
    return path.with_name(name)


def not_split_note(revision: str | None, parts: Sequence[str], reason: str) -> FileFinding:
    """The note on a file whose autocommit work stays in it, where the split cannot be made."""
    names = " and ".join(f"{revision}_{part}" if revision else f"<rev>_{part}" for part in parts)
    return FileFinding(
        SPLIT_REVISION, 1, 1,
        f"its autocommit work stays in this revision, in the form that is safe in one, not "
        f"split off into {names} as for a revision that has not run, because {reason}",
        fixable=False, note=True)


@dataclass(frozen=True)
class _Revision:
    path: Path
    revision: str | None
    down_revisions: tuple[str, ...]


class Folder:
    """The revision files of one folder, read once: their ids and ``down_revision``."""

    def __init__(self, folder: Path) -> None:
        self.revisions: list[_Revision] = []
        for name in sorted(_python_files(folder)):
            path = folder / name
            try:
                with open(path, "rb") as fh:
                    data = fh.read()
            except OSError:
                continue  # the file's own run reports what is wrong with it
            self.revisions.append(_Revision(path, revision_of(data), _down_revisions(data)))

    def obstacle(
        self, path: Path, revision: str, parts: Sequence[tuple[Part, bytes | None]]
    ) -> tuple[Literal["child", "collision"], str] | None:
        """What stands in the way of writing ``parts`` of ``revision`` (in ``path``) beside
        it, and why; None when nothing does. ``parts``: each one's bytes, None where only its
        id is known (``check``). A part's file already there with those bytes is no obstacle
        (a rerun after an interrupted write)."""
        ours: set[Path] = set()
        for part, data in parts:
            target = part_path(path, revision, part)
            part_id = f"{revision}_{part}"
            if target.exists():
                same = (_read(target) == data) if data is not None else (
                    revision_of(_read(target) or b"") == part_id)
                if not same:
                    return "collision", (
                        f"{target} is in the way of {part_id}, split off from it: nothing "
                        "was written; move that file away (or delete it if it is an "
                        "earlier split's) and rerun")
                ours.add(target)
            for other in self.revisions:
                if other.revision == part_id and other.path not in ours \
                        and not _same_file(other.path, target):
                    return "collision", (
                        f"revision {part_id}, which would be split off from it, is already "
                        f"in {other.path}: nothing was written; remove or rename that "
                        "revision and rerun")
        if "post" not in dict(parts):
            return None  # `<rev>_pre` goes before it: what follows it still follows it
        for other in self.revisions:
            if revision in other.down_revisions and other.path not in ours \
                    and not _same_file(other.path, path):
                return "child", (
                    f"revision {other.revision} ({other.path.name}) already follows "
                    f"{revision} (to have it split, point that file's down_revision at "
                    f"{revision}_post before `migrafix rewrite` writes this one)")
        return None


def _python_files(folder: Path) -> list[str]:
    try:
        return [name for name in os.listdir(folder or ".") if name.endswith(".py")]
    except OSError:
        return []


def _read(path: Path) -> bytes | None:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:
        return None


def _same_file(one: Path, other: Path) -> bool:
    try:
        return os.path.samefile(one, other)
    except OSError:
        return False


def orphaned_parts(checked: Iterable[tuple[Path, str | None]]) -> list[tuple[Path, FileFinding]]:
    """Each split-off part, in the folders of the ``checked`` files (with the revision id the
    run read in each), whose main revision no file there holds, with a finding that says
    what to do. Only the folder's files that were not checked are read, and only their ids."""
    by_folder: dict[str, dict[str, str | None]] = {}
    for path, revision in checked:
        # strings, not Path objects: a warm check passes every file of a history here
        folder, name = os.path.split(path)
        by_folder.setdefault(folder, {})[name] = revision
    found: list[tuple[Path, FileFinding]] = []
    for folder in sorted(by_folder):
        names = by_folder[folder]
        for name in _python_files(Path(folder)):
            if name not in names:
                data = _read(Path(folder, name))
                names[name] = revision_of(data) if data is not None else None
        ids = {revision: name for name, revision in sorted(names.items()) if revision}
        for revision, name in ids.items():
            split = part_of(revision) if revision.endswith(("_pre", "_post")) else None
            if split is None or split[0] in ids:
                continue
            path = Path(folder, name)
            main, part = split
            found.append((path, FileFinding(
                SPLIT_REVISION, 1, 1,
                f"revision {revision} is the {part} part of revision {main}, written "
                f"with it by migrafix, and no file here holds {main} (Alembic stops on "
                f"KeyError: '{main}'): to regenerate {main}, delete this file too (rm {path}); "
                f"else restore {main}'s file",
                fixable=False)))
    return found
