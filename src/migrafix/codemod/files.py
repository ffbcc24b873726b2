"""Revision files on disk: finding them, reading them exactly, writing them atomically.

A file's bytes are the truth: it is read as bytes and decoded as UTF-8 without newline
translation, so ``\\r\\n`` reaches the codemod and comes back; a UTF-8 byte order mark is kept
aside and put back. A write goes to a temporary file in the same folder, gets the original's
permission bits, and replaces the original in one ``os.replace``: a reader sees the old file or
the new one, never half of one.
"""

from __future__ import annotations

import ast
import contextlib
import os
import re
import stat
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import libcst as cst

__all__ = [
    "STDIN",
    "Candidate",
    "Decoded",
    "decode",
    "describe_decode_error",
    "describe_os_error",
    "describe_parse_error",
    "discover",
    "encode",
    "looks_like_revision",
    "read_bytes",
    "write_atomic",
]

STDIN = "-"

_BOM = b"\xef\xbb\xbf"
# Module level (column 0): `revision = "..."` or `revision: str = "..."`, and `def upgrade`.
_REVISION = re.compile(rb"^revision[ \t]*(?::[^=\r\n]*)?=(?!=)", re.MULTILINE)
_UPGRADE = re.compile(rb"^def[ \t]+upgrade\b", re.MULTILINE)
_SKIPPED_DIRECTORIES = frozenset({"__pycache__"})


@dataclass(frozen=True)
class Candidate:
    """A path to look at. ``explicit``: named on the command line rather than found in a folder.

    ``path`` is ``None`` for standard input.
    """

    name: str
    path: Path | None
    explicit: bool


def looks_like_revision(data: bytes) -> bool:
    """Whether a file's bytes have a module-level ``revision =`` and a ``def upgrade``."""
    return _REVISION.search(data) is not None and _UPGRADE.search(data) is not None


def discover(arguments: Sequence[str]) -> Iterator[Candidate]:
    """The files named, and the ``.py`` files below the folders named, in the order given.

    Below a folder, ``__pycache__`` and hidden folders (``.git``, ``.venv``, ...) are skipped
    and names are sorted. A file reached twice is yielded once. A path that does not exist is
    yielded as it is: reading it reports the error.
    """
    seen: set[str] = set()
    real_folders: dict[str, str] = {}  # pre-commit names every file: one realpath per folder

    def real_path(path: str) -> str:
        """The file's real path: its folder's, resolved once per folder, joined to its name,
        unless the file itself is a symlink."""
        if os.path.islink(path):
            return os.path.realpath(path)
        folder, name = os.path.split(path)
        real = real_folders.get(folder)
        if real is None:
            real = real_folders[folder] = os.path.realpath(folder or os.curdir)
        return os.path.join(real, name)

    def first_time(key: str) -> bool:
        if key in seen:
            return False
        seen.add(key)
        return True

    for argument in arguments:
        if argument == STDIN:
            yield Candidate(STDIN, None, explicit=True)
        elif os.path.isdir(argument):
            for found in _walk(argument):
                if first_time(real_path(found)):
                    yield Candidate(found, Path(found), explicit=False)
        elif first_time(real_path(argument)):
            yield Candidate(argument, Path(argument), explicit=True)


def _walk(top: str) -> Iterator[str]:
    """Each ``.py`` file below ``top``."""
    for directory, subdirectories, filenames in os.walk(top):
        subdirectories[:] = sorted(
            d for d in subdirectories if d not in _SKIPPED_DIRECTORIES and not d.startswith(".")
        )
        for filename in sorted(filenames):
            if filename.endswith(".py"):
                yield os.path.join(directory, filename)


# Non-blocking: opening a FIFO returns at once (and is then refused) instead of waiting for a
# writer. Binary: no newline translation where the C library would make one (Windows).
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)


def read_bytes(path: Path) -> bytes:
    """A regular file's bytes; ``OSError`` for anything else. On a descriptor, not a file
    object: half the cost, which is a tenth of a warm run."""
    descriptor = os.open(path, _READ_FLAGS)
    try:
        size = os.fstat(descriptor)
        if not stat.S_ISREG(size.st_mode):
            raise OSError("not a regular file")
        data = os.read(descriptor, size.st_size + 1)
        if len(data) <= size.st_size:  # a regular file's short read is its end
            return data
        chunks = [data]  # it grew since fstat
        while chunk := os.read(descriptor, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(descriptor)


@dataclass(frozen=True)
class Decoded:
    text: str
    bom: bool


def decode(data: bytes) -> Decoded:
    """UTF-8, newlines untouched. Raises ``UnicodeDecodeError``."""
    if data.startswith(_BOM):
        return Decoded(data[len(_BOM) :].decode("utf-8"), bom=True)
    return Decoded(data.decode("utf-8"), bom=False)


def encode(text: str, bom: bool) -> bytes:
    data = text.encode("utf-8")
    return _BOM + data if bom else data


def describe_decode_error(exc: UnicodeDecodeError) -> str:
    byte = exc.object[exc.start : exc.start + 1]
    return f"not valid UTF-8 (byte 0x{byte.hex()} at offset {exc.start})"


def describe_parse_error(text: str, filename: str, exc: cst.ParserSyntaxError) -> str:
    """Python's own message where it has one (clearer than libcst's), else libcst's."""
    try:
        compile(text, filename, "exec", ast.PyCF_ONLY_AST, dont_inherit=True)
    except SyntaxError as python_error:
        where = f"line {python_error.lineno}"
        if python_error.offset:
            where += f", column {python_error.offset}"
        return f"does not parse: {where}: {python_error.msg}"
    except ValueError as python_error:  # null bytes, before Python 3.12
        return f"does not parse: {python_error}"
    first_line = str(exc).partition("\n")[0]
    return f"does not parse (libcst): {first_line} {exc.message}"


def describe_os_error(exc: OSError) -> str:
    return exc.strerror or str(exc)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path``'s content with ``data``, keeping its permission bits (and owner, where
    allowed). A symlink is followed: its target is replaced, the link stays a link.

    On failure the original is untouched and no temporary file is left behind.
    """
    target = Path(os.path.realpath(path))
    original = target.stat()
    descriptor, temporary = tempfile.mkstemp(
        dir=target.parent, prefix=".migrafix-", suffix=".tmp"
    )
    try:
        with os.fdopen(descriptor, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(temporary, stat.S_IMODE(original.st_mode))
        if hasattr(os, "chown"):
            written = os.stat(temporary)
            if (written.st_uid, written.st_gid) != (original.st_uid, original.st_gid):
                # Not ours to give away (not root): the new file stays the writer's.
                with contextlib.suppress(PermissionError):
                    os.chown(temporary, original.st_uid, original.st_gid)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
