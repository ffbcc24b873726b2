"""What a file's project says: its settings, its database dialect, whether git has it.

One ``Project`` per run caches what it looked up, per folder (its real path, the nearest
pyproject.toml and alembic.ini, its git repository) and per git repository (the files of its
HEAD commit in the folders the run names), so that a run costs the same per file whatever the
flags: no realpath, no git call and no import per file.
"""

from __future__ import annotations

import configparser
import dataclasses
import functools
import importlib
import os
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from migrafix.codemod.api import Naming, Options
from migrafix.settings import (
    Settings,
    SettingsError,
    load_pyproject,
)

__all__ = [
    "DEFAULT_DIALECT",
    "Project",
    "Resolved",
    "dialect_from_ini",
    "known_dialect",
]

DEFAULT_DIALECT = "postgresql"
COMMAND_LINE = "command line"

ConcreteNaming = Literal["convention", "database"]


@dataclass(frozen=True)
class Resolved:
    options: Options
    # Under --naming auto, why git could not say whether the file is committed: it was then
    # taken for a revision that already ran ("database"). None when git could say.
    status_unknown: str | None = None


# Why --naming auto cannot ask git about a file (``Resolved.status_unknown``).
NOT_IN_GIT = "not in a git checkout"
NO_GIT = "git is not installed"
IGNORED = "ignored by git"
STANDARD_INPUT = "no path to ask git about"


class Project:
    """Resolves ``Options`` per file: ``[tool.migrafix]`` of the nearest pyproject.toml, then
    the command line's settings; the dialect given or read from the nearest alembic.ini; the
    naming given, or for "auto" what git says of the file: "database" if its repository's
    HEAD commit (or the ``released_in`` one) has it, "convention" if it is new to git since
    (untracked, only staged, or committed after it), and "database" when git cannot say
    (``Resolved.status_unknown``): a revision that already ran must keep the names deployed
    databases have, and the database's name is also what a revision that has not run would
    get."""

    def __init__(
        self,
        command_line: Mapping[str, Any],
        dialect: str | None = None,
        naming: Naming = "auto",
        released_in: str = "HEAD",
    ) -> None:
        self.command_line = dict(command_line)
        self.dialect = dialect
        self.naming = naming
        # Fail now, once, rather than once per file.
        Settings().merged(self.command_line, COMMAND_LINE)
        self._pyprojects: dict[Path, Path | None] = {}
        self._settings: dict[Path | None, Settings | SettingsError] = {}
        self._nearest: dict[tuple[str, Path], Path | None] = {}
        self._dialects: dict[Path | None, str] = {}  # per alembic.ini
        self._git = _Git(released_in)
        self._models: dict[str, tuple[dict[str, str], dict[str, str]] | SettingsError] = {}
        # Per folder as given (a string: a Path costs more to build and hash than the rest of
        # a file's resolution), its real path; and with a naming, the Options its files share.
        self._folders: dict[str, Path] = {}
        self._options: dict[tuple[str, ConcreteNaming], Options] = {}

    def expect(self, paths: Iterable[Path]) -> None:
        """The files the run will resolve: git is asked about their folders at once, rather
        than about the whole repository."""
        if self.naming == "auto":
            folders = {os.path.dirname(path) for path in paths}
            self._git.expect(self._resolved(folder) for folder in folders)

    def resolve(self, path: Path | None) -> Resolved:
        """Options for the file at ``path`` (``None``: standard input, seen from the current
        folder). Raises ``SettingsError`` for a broken pyproject.toml."""
        given, name = os.path.split(path) if path is not None else (os.getcwd(), None)
        folder = self._resolved(given)
        naming: ConcreteNaming
        unknown: str | None = None
        if self.naming != "auto":
            naming = self.naming
        else:
            status = self._git.committed(folder, name) if name is not None else STANDARD_INPUT
            if isinstance(status, str):
                naming, unknown = "database", status
            else:
                naming = "database" if status else "convention"
        options = self._options.get((given, naming))
        if options is None:
            options = self._options_for(folder, name, naming)
            if not options.settings.per_path:
                self._options[given, naming] = options
        return Resolved(options, unknown)

    def _options_for(self, folder: Path, name: str | None, naming: ConcreteNaming) -> Options:
        settings = self._settings_for(folder)
        root = self._pyprojects.get(folder)
        if name is not None and root is not None and settings.per_path:
            # the file as the globs see it: a symlinked revision is the link's path
            real_path = folder / name
            try:
                relative = real_path.relative_to(root.parent).as_posix()
            except ValueError:
                relative = real_path.as_posix()
            settings = settings.for_path(relative)
        integer_keys = None
        if settings.metadata:
            settings, integer_keys = self._with_models(settings, root)
        return Options(
            settings=settings,
            dialect=self.dialect or self._dialect_for(folder),
            naming=naming,
            integer_keys=integer_keys,
        )

    def _resolved(self, folder: str) -> Path:
        """The real path of ``folder`` ("" is the current folder), once per folder: every
        file of a folder asks."""
        real = self._folders.get(folder)
        if real is None:
            real = self._folders[folder] = Path(folder or os.curdir).resolve()
        return real

    def _settings_for(self, folder: Path) -> Settings:
        if folder not in self._pyprojects:
            self._pyprojects[folder] = self._find_upward(folder, "pyproject.toml")
        pyproject = self._pyprojects[folder]
        if pyproject not in self._settings:
            try:
                settings = Settings()
                if pyproject is not None:
                    raw = load_pyproject(pyproject)
                    settings = settings.merged(raw, f"{pyproject} [tool.migrafix]")
                self._settings[pyproject] = settings.merged(self.command_line, COMMAND_LINE)
            except SettingsError as exc:
                self._settings[pyproject] = exc
        found = self._settings[pyproject]
        if isinstance(found, SettingsError):
            raise found
        return found

    def _with_models(
        self, settings: Settings, pyproject: Path | None
    ) -> tuple[Settings, Mapping[str, str]]:
        """What the project's models (``metadata`` setting) say, read by importing the
        project's own models module (never a revision file): the naming convention, in the
        settings, and each table's single integer primary key."""
        assert settings.metadata is not None
        if settings.metadata not in self._models:
            self._models[settings.metadata] = _read_models(
                settings.metadata, pyproject.parent if pyproject else Path.cwd())
        models = self._models[settings.metadata]
        if isinstance(models, SettingsError):
            raise models
        convention, integer_keys = models
        return dataclasses.replace(
            settings, naming_convention={**settings.naming_convention, **convention}), \
            integer_keys

    def _dialect_for(self, folder: Path) -> str:
        ini = self._find_upward(folder, "alembic.ini")
        if ini not in self._dialects:
            self._dialects[ini] = (dialect_from_ini(ini) if ini else None) or DEFAULT_DIALECT
        return self._dialects[ini]

    def _find_upward(self, folder: Path, name: str) -> Path | None:
        """``settings.find_upward``, remembered per folder and shared with the folders below:
        the folders of a history look at their common parents once."""
        key = (name, folder)
        if key not in self._nearest:
            candidate = folder / name
            if candidate.is_file():
                self._nearest[key] = candidate
            elif folder.parent == folder:
                self._nearest[key] = None
            else:
                self._nearest[key] = self._find_upward(folder.parent, name)
        return self._nearest[key]


def _read_models(
    spec: str, root: Path
) -> tuple[dict[str, str], dict[str, str]] | SettingsError:
    """The naming convention of the MetaData ``spec`` names, and the single integer primary
    key of each of its tables (by "table" and "schema.table")."""
    import sqlalchemy as sa

    module_name, _, attribute = spec.partition(":")
    sys.path.insert(0, str(root))
    try:
        target: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except Exception as exc:  # the project's own code failed: say which setting led there
        return SettingsError(f"metadata = {spec!r}: cannot load it: {exc}")
    finally:
        sys.path.remove(str(root))
    if not isinstance(target, sa.MetaData):
        return SettingsError(f"metadata = {spec!r} is a {type(target).__name__}, not a MetaData")
    convention = {str(k): v for k, v in target.naming_convention.items()
                  if isinstance(k, str) and isinstance(v, str)}
    integer_keys: dict[str, str] = {}
    for table in target.tables.values():
        key = list(table.primary_key.columns)
        if len(key) == 1 and isinstance(key[0].type, sa.Integer):
            integer_keys[table.fullname] = str(key[0].name)
    return convention, integer_keys


def dialect_from_ini(path: Path) -> str | None:
    """The dialect of ``sqlalchemy.url`` in ``[alembic]`` (else the first section that has
    one): ``postgresql+psycopg://...`` is "postgresql". ``None`` when there is no URL, or its
    scheme is not a dialect SQLAlchemy knows (Alembic's template says ``driver://``)."""
    parser = configparser.RawConfigParser()  # %(here)s and friends are not ours to expand
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, OSError, UnicodeDecodeError):
        return None
    sections = ["alembic", *(s for s in parser.sections() if s != "alembic")]
    for section in sections:
        if parser.has_option(section, "sqlalchemy.url"):
            url = parser.get(section, "sqlalchemy.url").strip()
            scheme, sep, _ = url.partition(":")
            name = scheme.partition("+")[0].strip().lower()
            return name if sep and known_dialect(name) else None
    return None


# sqlalchemy.dialects.__all__ of SQLAlchemy 2.x, and mariadb (tests/test_cache.py checks it).
_BUILT_IN_DIALECTS = frozenset({"mssql", "mysql", "oracle", "postgresql", "sqlite", "mariadb"})


def known_dialect(name: str) -> bool:
    """Whether SQLAlchemy (or an installed plugin) has a dialect called ``name``. SQLAlchemy
    is imported (0.15 s, half a warm check of the corpus) only to load a plugin's
    dialect: a name that is neither SQLAlchemy's nor a plugin's (Alembic's template says
    ``driver://``) is answered without it."""
    if not name or not name.replace("_", "").isalnum():
        return False
    if name in _BUILT_IN_DIALECTS:
        return True
    if name not in _plugin_dialects():
        return False
    from sqlalchemy.dialects import registry

    try:
        registry.load(name)
    except Exception:  # a plugin that fails to import
        return False
    return True


@functools.cache
def _plugin_dialects() -> frozenset[str]:
    """The names of the ``sqlalchemy.dialects`` entry points, where SQLAlchemy's registry
    looks for a dialect it does not have: read from the ``entry_points.txt`` of each
    distribution on ``sys.path``, as importlib.metadata finds them (pip installs no zipped
    eggs), without importing it: with the email and zipfile modules it brings, 0.03 s, a
    tenth of a warm run."""
    names: set[str] = set()
    for entry in sys.path:
        try:
            listing = os.listdir(entry or os.curdir)
        except OSError:  # not a folder (a zip file), or gone
            continue
        for name in listing:
            if not name.endswith((".dist-info", ".egg-info")):
                continue
            parser = configparser.RawConfigParser(delimiters=("=",))
            parser.optionxform = str  # type: ignore[assignment,method-assign]
            try:
                parser.read(os.path.join(entry, name, "entry_points.txt"), encoding="utf-8")
            except (configparser.Error, OSError, UnicodeDecodeError):
                continue
            if parser.has_section("sqlalchemy.dialects"):
                names.update(parser.options("sqlalchemy.dialects"))
    return frozenset(names)


# Variables git sets for hooks (GIT_DIR, GIT_INDEX_FILE, ...) point at the repository the hook
# runs in, relative to its folder; a file's own repository is found from the file's folder.
_GIT_KEEP = ("GIT_EXEC_PATH", "GIT_CONFIG", "GIT_CEILING_DIRECTORIES", "GIT_SSL", "GIT_SSH")


def _git_env() -> dict[str, str]:
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("GIT_") or key.startswith(_GIT_KEEP)
    }


class _Git:
    """What git says of a file: committed (True), new to git (False), or why it cannot say.

    A folder's repository is found by looking for ``.git`` in it and above it, once per
    folder: outside a checkout no git runs at all. Then, per repository, one ``git ls-tree``
    listing HEAD's files in the folders the run will ask about (``expect``: pre-commit names
    a few files of what may be a large repository), after a ``git rev-parse`` (its top level
    and HEAD) unless nothing can put its work tree elsewhere (``_Repository.plain``); and
    only for a folder holding a file HEAD does not have, one ``git ls-files`` telling a new
    file (untracked or staged) from one git ignores.
    """

    def __init__(self, released_in: str = "HEAD") -> None:
        self.released_in = released_in  # the commit whose files are released
        self._roots: dict[Path, Path | None] = {}
        self._repositories: dict[Path, _Repository | str] = {}
        # per folder: its repository and its path from the top level ("a/b/"), or why not
        self._folders: dict[Path, tuple[_Repository, str] | str] = {}
        self._new: dict[Path, frozenset[str] | str] = {}  # per folder: the files new to git
        self._expected: set[Path] = set()

    def expect(self, folders: Iterable[Path]) -> None:
        """Resolved folders the run will ask about: listed together."""
        self._expected.update(folders)

    def committed(self, folder: Path, name: str) -> bool | str:
        """Whether HEAD has the file ``name`` of the resolved ``folder``."""
        place = self._folders.get(folder)
        if place is None:
            place = self._folders[folder] = self._place(folder)
        if isinstance(place, str):
            return place
        repository, prefix = place
        relative = prefix + name
        if relative in repository.committed:
            return True
        new = self._new_to_git(folder, repository, prefix)
        if isinstance(new, str):
            return new
        return False if relative in new else IGNORED

    def _place(self, folder: Path) -> tuple[_Repository, str] | str:
        root = self._root(folder)
        if root is None:
            return NOT_IN_GIT
        repository = self._repositories.get(root)
        if repository is None:
            repository = self._repositories[root] = (
                _Repository.plain(root, self.released_in)
                or _Repository.read(root, self.released_in))
        if isinstance(repository, str):
            return repository
        relative = repository.relative(folder)
        if relative is None:  # a work tree elsewhere (core.worktree): git does not have it
            return f"outside its git work tree {repository.toplevel}"
        failure = repository.list(relative, self._expected)
        if failure is not None and repository.assumed:
            # No commit yet, a broken repository, one another user owns: rev-parse says which.
            self._repositories[root] = _Repository.read(root, self.released_in)
            return self._place(folder)
        if failure is not None:
            return failure
        return repository, "" if relative == "." else f"{relative}/"

    def _root(self, folder: Path) -> Path | None:
        """The nearest folder at or above ``folder`` that holds a ``.git``."""
        if folder not in self._roots:
            if os.path.lexists(folder / ".git"):
                self._roots[folder] = folder
            elif folder.parent == folder:
                self._roots[folder] = None
            else:
                self._roots[folder] = self._root(folder.parent)
        return self._roots[folder]

    def _new_to_git(
        self, folder: Path, repository: _Repository, prefix: str
    ) -> frozenset[str] | str:
        """The files below ``folder`` in git's index, or untracked and not ignored."""
        if folder not in self._new:
            try:
                listed = _run_git(["--literal-pathspecs", "ls-files", "-z", "--cached",
                                   "--others", "--exclude-standard", "--full-name", "--",
                                   prefix or "."], repository.toplevel)
            except _GitError as exc:
                self._new[folder] = exc.reason
            else:
                self._new[folder] = frozenset(n for n in listed.split("\0") if n)
        return self._new[folder]


class _Repository:
    """A repository's top level, and the files of its HEAD commit in the folders listed."""

    def __init__(self, toplevel: Path, head: str | None, assumed: bool = False) -> None:
        self.toplevel = toplevel
        self.head = head  # None: no commit yet, nothing released
        self.assumed = assumed  # toplevel and head not asked of git (plain)
        self.committed: set[str] = set()  # paths relative to ``toplevel``
        self._listed: set[str] = set()  # folders whose files (all below) are in ``committed``
        self._failure: str | None = None

    @staticmethod
    def plain(root: Path, released_in: str) -> _Repository | None:
        """The repository of ``root`` without asking git, when nothing in its configuration
        can put its work tree anywhere but ``root``: a ``.git`` folder (not a worktree's
        file) whose config sets no work tree, bareness or include. HEAD is then listed as it
        is; should that fail, ``read`` asks git why. One git process fewer per repository."""
        if released_in != "HEAD":
            return None
        git_folder = root / ".git"
        try:
            with open(git_folder / "config", "rb") as config:
                text = config.read().lower()
        except OSError:  # a worktree's .git file, an unreadable folder
            return None
        if b"worktree" in text or b"include" in text or any(
                value not in (b"false", b"no", b"off", b"0")
                for value in re.findall(rb"^\s*bare\b\s*=?\s*(\S*)", text, re.MULTILINE)):
            return None
        return _Repository(root, "HEAD", assumed=True)

    @staticmethod
    def read(root: Path, released_in: str = "HEAD") -> _Repository | str:
        """The repository whose ``.git`` is in ``root``, with the files of commit
        ``released_in`` taken for released; or why git cannot read it."""
        # --verify -q: no such commit (HEAD before the first commit) is exit 1 and no message;
        # a broken or bare repository is git's own message.
        try:
            lines = _run_git(["rev-parse", "--show-toplevel", "--verify", "-q",
                              f"{released_in}^{{commit}}"], root, accept=(0, 1)).splitlines()
        except _GitError as exc:
            return exc.reason
        if not lines:
            return "git failed: rev-parse printed no top level"
        if len(lines) == 1 and released_in != "HEAD":  # a name given that names no commit
            return f"git has no commit {released_in} (--released-in; fetched?)"
        return _Repository(Path(lines[0]).resolve(), lines[1] if len(lines) > 1 else None)

    def relative(self, folder: Path) -> str | None:
        """``folder`` from the top level ("." for the top), ``None`` if it is not below it."""
        try:
            return folder.relative_to(self.toplevel).as_posix()
        except ValueError:
            return None

    def list(self, folder: str, expected: Iterable[Path]) -> str | None:
        """Makes ``committed`` hold HEAD's files below ``folder``, listed in one call with
        the ``expected`` folders of this repository not listed yet; or says why git could
        not list them."""
        if self.head is None or self._failure is not None or self._covers(folder):
            return self._failure
        wanted = {folder}
        for other in expected:
            relative = self.relative(other)
            if relative is not None and not self._covers(relative):
                wanted.add(relative)
        # below a folder asked for already (ls-tree -r lists all of it): not asked again
        folders = [f for f in sorted(wanted) if not any(
            parent in wanted for parent in _parents(f))]
        try:
            for start in range(0, len(folders), 1000):  # far below any command-line limit
                listed = _run_git(["--literal-pathspecs", "ls-tree", "-r", "-z", "--name-only",
                                   "--full-tree", self.head, "--", *folders[start:start + 1000]],
                                  self.toplevel)
                self.committed.update(n for n in listed.split("\0") if n)
        except _GitError as exc:
            self._failure = exc.reason
            return self._failure
        self._listed.update(folders)
        return None

    def _covers(self, folder: str) -> bool:
        return folder in self._listed or any(p in self._listed for p in _parents(folder))


def _parents(folder: str) -> list[str]:
    """The folders above ``folder`` (a path from the top level), up to the top, ".": a/b/c
    has a/b, a and "."."""
    if folder == ".":
        return []
    parts = folder.split("/")
    return ["/".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)] + ["."]


class _GitError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _run_git(arguments: list[str], folder: Path, accept: tuple[int, ...] = (0,)) -> str:
    """git's standard output; ``_GitError`` saying why there is none."""
    try:
        code, out, err = _spawn(["git", "-C", str(folder), *arguments], _git_env())
    except FileNotFoundError:
        raise _GitError(NO_GIT) from None
    except OSError as exc:
        raise _GitError(f"git cannot run: {exc.strerror or exc}") from None
    if code not in accept:
        raise _GitError(f"git failed: {_first_line(err.decode('utf-8', 'replace'))}")
    return out.decode("utf-8", "surrogateescape")


def _spawn(argv: list[str], env: dict[str, str]) -> tuple[int, bytes, bytes]:
    """``argv``'s exit code, standard output and standard error. Where there is
    ``posix_spawnp``, without subprocess: importing it (and the threading it imports) is a
    fiftieth of a warm check of a large history, and its fork costs more."""
    if not hasattr(os, "posix_spawnp"):
        import subprocess

        done = subprocess.run(argv, env=env, capture_output=True, check=False)
        return done.returncode, done.stdout, done.stderr
    import select

    out_read, out_write = os.pipe()  # not inherited: only the ends dup2 gives the child
    err_read, err_write = os.pipe()
    try:
        pid = os.posix_spawnp(argv[0], argv, env, file_actions=[
            (os.POSIX_SPAWN_DUP2, out_write, 1), (os.POSIX_SPAWN_DUP2, err_write, 2)])
    except OSError:
        os.close(out_read)
        os.close(err_read)
        raise
    finally:
        os.close(out_write)
        os.close(err_write)
    # Both pipes read as they fill: git waiting on a full one while this reads the other
    # would wait forever.
    chunks: dict[int, list[bytes]] = {out_read: [], err_read: []}
    poller = select.poll()
    for fd in chunks:
        poller.register(fd, select.POLLIN)
    open_ends = len(chunks)
    try:
        while open_ends:
            for fd, _ in poller.poll():
                data = os.read(fd, 1 << 16)
                if data:
                    chunks[fd].append(data)
                else:
                    poller.unregister(fd)
                    open_ends -= 1
    finally:
        os.close(out_read)
        os.close(err_read)
        _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), b"".join(chunks[out_read]), \
        b"".join(chunks[err_read])


def _first_line(text: str) -> str:
    return text.strip().partition("\n")[0] or "git failed"
