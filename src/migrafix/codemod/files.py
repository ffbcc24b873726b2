"""Revision files on disk: finding them, reading them exactly, writing them atomically.

A file's bytes are the truth: it is read as bytes and decoded as Python decodes it (a UTF-8
byte order mark, a PEP 263 coding line, else UTF-8) without newline translation, so ``\\r\\n``
reaches the codemod and comes back, and a fixed file is written in its own encoding, byte order
mark included. A write goes to a temporary file in the same folder, gets the original's
permission bits, and replaces the original in one ``os.replace``: a reader sees the old file or
the new one, never half of one. A file that may not be written is not replaced.
"""

from __future__ import annotations

import ast
import codecs
import contextlib
import errno
import io
import os
import re
import stat
import tempfile
import tokenize
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
    "NotDecodable",
    "check_writable",
    "create_atomic",
    "decode",
    "describe_encode_error",
    "describe_os_error",
    "describe_parse_error",
    "discover",
    "encode",
    "looks_like_revision",
    "read_bytes",
    "revision_of",
    "scan_revision",
    "write_atomic",
]

STDIN = "-"

_BOM = b"\xef\xbb\xbf"
_UTF8 = frozenset({"utf-8", "utf-8-sig"})
_PYTHON_READS = ": Python reads source code in UTF-8, or in the encoding a coding line declares"
# Module level (column 0): `revision = "..."` or `revision: str = "..."` (the id, when it is a
# string literal), and `def upgrade`.
_REVISION = re.compile(
    rb"""^revision[ \t]*(?::[^=\r\n]*)?=(?!=)(?:[ \t]*[rRuU]?['"]([^'"\r\n]+)['"])?""",
    re.MULTILINE)
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
    return scan_revision(data)[0]


def scan_revision(data: bytes) -> tuple[bool, str | None]:
    """Whether a file's bytes look like a revision (``looks_like_revision``), and the
    revision id they assign (``revision_of``), from one search."""
    found = _REVISION.search(data)
    if found is None:
        return False, None
    revision = found[1].decode("utf-8", "replace") if found[1] else None
    return _UPGRADE.search(data) is not None, revision


def revision_of(data: bytes) -> str | None:
    """The revision id a file's bytes assign at module level, as a string literal; None when
    there is none. The first assignment: the search stops there, near the top (reading a
    whole file for a later one cost a third of a warm check's scan)."""
    found = _REVISION.search(data)
    return found[1].decode("utf-8", "replace") if found and found[1] else None


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
    # The codec Python reads the file with (``tokenize.detect_encoding``): "utf-8",
    # "utf-8-sig" (a byte order mark, put back by encoding with it), or the coding line's.
    encoding: str = "utf-8"

    @property
    def utf8(self) -> bytes | None:
        """The text as UTF-8, what the byte scans (``looks_like_revision``, the pre-filter)
        read; None when the file's own bytes are that already."""
        return None if self.encoding in _UTF8 else self.text.encode("utf-8")


class NotDecodable(ValueError):
    """A file Python would refuse to read: the message says why."""


def decode(data: bytes) -> Decoded:
    """The text Python reads from ``data`` (PEP 263: a UTF-8 byte order mark, a coding line,
    else UTF-8), newlines untouched. Raises ``NotDecodable``."""
    if data.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        raise NotDecodable(f"is UTF-32 (it starts with its byte order mark){_PYTHON_READS}")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise NotDecodable(f"is UTF-16 (it starts with its byte order mark){_PYTHON_READS}")
    cookie_lines: Sequence[bytes] = ()
    second_end = data.find(b"\n", data.find(b"\n") + 1)
    if b"coding" not in (data if second_end < 0 else data[:second_end]):
        encoding = "utf-8-sig" if data.startswith(_BOM) else "utf-8"
    else:  # a coding line is in the first two lines, or there is a word like it
        try:
            encoding, cookie_lines = tokenize.detect_encoding(io.BytesIO(data).readline)
        except SyntaxError as exc:
            raise NotDecodable(_cookie_error(data, exc)) from None
        if codecs.lookup(encoding).name == "utf-8":  # "utf8" too: tokenize keeps that name
            encoding = "utf-8"
    if encoding in _UTF8:
        # tokenize leaves "utf-8-sig" to strip the mark; its offsets count from after it
        start = len(_BOM) if encoding == "utf-8-sig" else 0
        try:
            return Decoded(data[start:].decode("utf-8"), encoding)
        except UnicodeDecodeError as exc:
            raise NotDecodable(_utf8_error(exc, start)) from None
    declared = f"{encoding}, the encoding its coding line declares"
    try:
        # The coding line must read the same in the encoding it declares (Python refuses
        # UTF-16 and the like); the byte scans rely on it too.
        cookie = b"".join(cookie_lines)
        if cookie.decode(encoding, errors="replace") != cookie.decode("utf-8"):
            raise NotDecodable(f"its coding line declares {encoding}, which is not "
                               "ASCII-compatible")
        return Decoded(data.decode(encoding), encoding)
    except UnicodeDecodeError as exc:
        raise NotDecodable(_byte_error(declared, exc, 0)) from None
    except LookupError:  # a codec of bytes, not text: rot13, base64
        raise NotDecodable(f"its coding line declares {encoding}, which is not a text "
                           "encoding") from None


def encode(text: str, encoding: str = "utf-8") -> bytes:
    """``text`` in the file's encoding. Raises ``UnicodeEncodeError`` when it cannot hold a
    character (a fix may bring one in)."""
    return text.encode(encoding)


def describe_encode_error(exc: UnicodeEncodeError) -> str:
    character = exc.object[exc.start : exc.start + 1]
    return f"the fixed code has {character!r}, which {exc.encoding} cannot hold"


def _byte_error(what: str, exc: UnicodeDecodeError, start: int) -> str:
    byte = exc.object[exc.start : exc.start + 1]
    return f"not valid {what} (byte 0x{byte.hex()} at offset {start + exc.start})"


def _utf8_error(exc: UnicodeDecodeError, start: int) -> str:
    if start:  # a byte order mark: UTF-8 it must be
        return _byte_error("UTF-8", exc, start)
    return f"{_byte_error('UTF-8', exc, start)}, and no coding line declares another encoding"


def _cookie_error(data: bytes, exc: SyntaxError) -> str:
    """tokenize's complaint, said of the file: its messages are worded for a parser."""
    message = str(exc.msg)
    if message.startswith("invalid or missing encoding declaration"):
        # A first or second line that is not UTF-8 and declares nothing: say where.
        start = len(_BOM) if data.startswith(_BOM) else 0
        try:
            data[start:].decode("utf-8")
        except UnicodeDecodeError as decode_error:
            return _utf8_error(decode_error, start)
    if message.startswith("encoding problem"):  # a byte order mark and another coding line
        return "starts with a UTF-8 byte order mark but its coding line declares another encoding"
    if message.startswith("unknown encoding"):
        return f"its coding line declares an {message}"
    return f"cannot be read as Python source: {message}"


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


def check_writable(path: Path) -> None:
    """Raise ``PermissionError`` for a file ``write_atomic`` refuses to replace: one with no
    write bit at all (read-only on purpose: refused even to root), or one the process lacks
    the permission to write (the rename would replace it all the same: it needs only the
    folder's write permission)."""
    target = Path(os.path.realpath(path))
    mode = stat.S_IMODE(target.stat().st_mode)
    if not mode & 0o222:
        raise PermissionError(errno.EACCES, f"read-only file (mode {mode:o})", str(path))
    if not os.access(target, os.W_OK):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path``'s content with ``data``, keeping its permission bits (and owner, where
    allowed). A symlink is followed: its target is replaced, the link stays a link.

    A file this process may not write is refused with ``PermissionError`` (``check_writable``).
    On failure the original is untouched and no temporary file is left behind.
    """
    check_writable(path)
    target = Path(os.path.realpath(path))
    original = target.stat()
    temporary = _written_temporary(target.parent, data, stat.S_IMODE(original.st_mode))
    try:
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


def create_atomic(path: Path, data: bytes, like: Path) -> None:
    """Create ``path`` holding ``data``, with ``like``'s permission bits (a revision file
    beside it): whole or not at all. ``FileExistsError`` if ``path`` exists, even one that
    appeared meanwhile: a new file never replaces another."""
    mode = stat.S_IMODE(os.stat(like).st_mode)
    temporary = _written_temporary(path.parent, data, mode)
    try:
        try:
            os.link(temporary, path)  # atomic, and refused where the name is taken
        except FileExistsError:
            raise
        except OSError:  # a file system without hard links
            if os.path.lexists(path):
                raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(path)) \
                    from None
            os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def _written_temporary(folder: Path, data: bytes, mode: int) -> str:
    """A temporary file in ``folder`` holding ``data`` (on disk), with permission bits
    ``mode``; removed again should that fail."""
    descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=".migrafix-", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(temporary, mode)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return temporary
