"""What earlier runs found, so that an unchanged tree is checked at the cost of reading it.

An entry is keyed by the SHA-256 of: the file's bytes, its resolved ``Options`` (settings,
dialect, naming: whatever the per-path settings, the models' naming convention and git made of
them), and the code that computed it (migrafix's version and the hash of its own source files,
the version of Python, the installed libcst, black, Alembic and SQLAlchemy). Any change to one
of those is a different key: entries are never invalidated, only no longer asked for.

An entry holds the findings and, when the file changes, the fixed text (unless ``check``
computed it: findings only, which ``rewrite`` does not take); for a file whose autocommit work
is split off, the revision files to create beside it and the file fixed as one revision (which
of the two is written depends on the folder, looked at on every run: codemod/split_parts.py).
A file that could not be processed is never cached. The folder is ``$MIGRAFIX_CACHE_DIR``, else
``$XDG_CACHE_HOME/migrafix``, else ``~/.cache/migrafix``; deleting it is always safe. Each entry
is its own file, written to a temporary name and renamed into place, so concurrent runs never
see half an entry. A cache that cannot be read or written is no cache, never an error.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.util
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from migrafix.codemod.api import FileFinding, NewRevision, Options
from migrafix.settings import Settings

__all__ = ["CACHE_ENV", "Entry", "ResultCache", "default_directory"]

CACHE_ENV = "MIGRAFIX_CACHE_DIR"
_FORMAT = "v1"
_DEPENDENCIES = ("libcst", "black", "alembic", "sqlalchemy")


def default_directory() -> Path:
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "migrafix"


@dataclass(frozen=True)
class Entry:
    findings: tuple[FileFinding, ...]
    source: str | None  # the fixed text; None when the file stays as it is
    # False: the findings alone (what `check` computes); `rewrite` computes the entry again.
    complete: bool = True
    # Revision files to create beside the file (their source None when not ``complete``), and
    # the file as one revision, for a folder where they cannot be written.
    new_revisions: tuple[NewRevision, ...] = ()
    unsplit: Entry | None = None


class ResultCache:
    def __init__(self, directory: Path | None = None) -> None:
        self.directory = (directory or default_directory()) / _FORMAT
        self._directory = str(self.directory)
        self._code = _code_fingerprint()
        self._writable = True
        # Settings objects are shared by every file of a folder: their fingerprint is computed
        # once each. The key holds the object too, so its id() cannot be reused by another.
        self._fingerprints: dict[tuple[int, int, str, str, str | None],
                                 tuple[Settings, object, bytes]] = {}

    def key(self, data: bytes, options: Options) -> str:
        digest = hashlib.sha256(self._code)
        digest.update(self._options_fingerprint(options))
        digest.update(b"\0")
        digest.update(data)
        return digest.hexdigest()

    def _options_fingerprint(self, options: Options) -> bytes:
        memo = (id(options.settings), id(options.integer_keys), options.dialect,
                options.naming, options.cannot_split)
        known = self._fingerprints.get(memo)
        if known is None or known[0] is not options.settings \
                or known[1] is not options.integer_keys:
            known = (options.settings, options.integer_keys, _options_fingerprint(options))
            self._fingerprints[memo] = known
        return known[2]

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / key[2:]

    def get(self, key: str) -> Entry | None:
        try:
            # A string path, not a Path: a warm run asks once per file, and building Path
            # objects was a tenth of such a run (profiled over the corpus).
            with open(os.path.join(self._directory, key[:2], key[2:]), "rb") as fh:
                return _entry(json.loads(fh.read()))
        except (OSError, ValueError, KeyError, TypeError):
            return None  # not there, or not readable as ours: a miss

    def put(self, key: str, entry: Entry) -> None:
        if not self._writable:
            return
        path = self._path(key)
        data = json.dumps(_raw(entry), ensure_ascii=False).encode("utf-8")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
            try:
                with os.fdopen(descriptor, "wb") as fh:
                    fh.write(data)
                os.replace(temporary, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
                raise
        except OSError:
            self._writable = False  # a read-only or full disk: run on without the cache


def _raw(entry: Entry) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "findings": [dataclasses.astuple(f) for f in entry.findings],
        "source": entry.source,
        "complete": entry.complete,
    }
    if entry.new_revisions:
        raw["new_revisions"] = [[r.part, r.revision, r.source] for r in entry.new_revisions]
    if entry.unsplit is not None:
        raw["unsplit"] = _raw(entry.unsplit)
    return raw


def _entry(raw: dict[str, Any]) -> Entry | None:
    findings = tuple(FileFinding(str(r), int(li), int(c), str(m), bool(f),
                                 None if w is None else str(w), bool(n))
                     for r, li, c, m, f, w, n in raw["findings"])
    source = raw["source"]
    if source is not None and not isinstance(source, str):
        return None
    new_revisions = []
    for part, revision, text in raw.get("new_revisions", ()):
        if part not in ("pre", "post") or not isinstance(revision, str) \
                or not isinstance(text, (str, type(None))):
            return None
        new_revisions.append(NewRevision(part, revision, text))
    unsplit = None
    if raw.get("unsplit") is not None:
        unsplit = _entry(raw["unsplit"])
        if unsplit is None:
            return None
    return Entry(findings, source, bool(raw.get("complete", True)), tuple(new_revisions),
                 unsplit)


def _options_fingerprint(options: Options) -> bytes:
    return json.dumps(dataclasses.asdict(options), sort_keys=True, default=_plain).encode()


def _plain(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return sorted(map(str, value))
    return repr(value)


_code_hash: bytes | None = None


def _code_fingerprint() -> bytes:
    """What computed an entry: migrafix's own source files and what it uses. The source is
    hashed (not its version alone) so that a development checkout never reads results of code
    it no longer has. A dependency is known by its installed package's ``__init__`` file (path,
    size, modification time), which every install or upgrade rewrites: asking
    importlib.metadata for the versions cost 0.02-0.04 s of imports, a tenth of a warm run."""
    global _code_hash
    if _code_hash is None:
        import migrafix

        digest = hashlib.sha256(f"{migrafix.__version__}\0{sys.version}\0".encode())
        for name in _DEPENDENCIES:
            digest.update(f"{name}={_installed(name)}\0".encode())
        package = Path(migrafix.__file__).parent
        for path in sorted(package.rglob("*.py")):
            digest.update(path.relative_to(package).as_posix().encode() + b"\0")
            digest.update(path.read_bytes())
        _code_hash = digest.digest()
    return _code_hash


def _installed(name: str) -> str:
    """Which install of the package ``name`` is there, without importing it."""
    try:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            return "?"
        status = os.stat(spec.origin)
    except (ImportError, ValueError, OSError):
        return "?"
    return f"{spec.origin}:{status.st_size}:{status.st_mtime_ns}"
