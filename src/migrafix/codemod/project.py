"""What a file's project says: its settings, its database dialect, whether git has it.

One ``Project`` per run (and per worker process) caches what it looked up: the nearest
pyproject.toml per folder, the nearest alembic.ini per folder, the files in each git
repository's HEAD commit.
"""

from __future__ import annotations

import configparser
import dataclasses
import importlib
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from migrafix.codemod.api import Naming, Options
from migrafix.settings import (
    Settings,
    SettingsError,
    find_pyproject,
    find_upward,
    load_pyproject,
)

__all__ = [
    "DEFAULT_DIALECT",
    "Project",
    "Resolved",
    "dialect_from_ini",
    "find_alembic_ini",
    "known_dialect",
]

DEFAULT_DIALECT = "postgresql"
COMMAND_LINE = "command line"

ConcreteNaming = Literal["convention", "database"]


@dataclass(frozen=True)
class Resolved:
    options: Options
    warnings: tuple[str, ...] = ()


class Project:
    """Resolves ``Options`` per file: ``[tool.migrafix]`` of the nearest pyproject.toml, then
    the command line's settings; the dialect given or read from the nearest alembic.ini; the
    naming given, or for "auto" whether git's HEAD commit has the file."""

    def __init__(
        self,
        command_line: Mapping[str, Any],
        dialect: str | None = None,
        naming: Naming = "auto",
    ) -> None:
        self.command_line = dict(command_line)
        self.dialect = dialect
        self.naming = naming
        # Fail now, once, rather than once per file.
        Settings().merged(self.command_line, COMMAND_LINE)
        self._pyprojects: dict[Path, Path | None] = {}
        self._settings: dict[Path | None, Settings | SettingsError] = {}
        self._dialects: dict[Path, str] = {}
        self._git = _Git()
        self._conventions: dict[str, dict[str, str] | SettingsError] = {}
        self._folders: dict[Path, Path] = {}

    def resolve(self, path: Path | None) -> Resolved:
        """Options for the file at ``path`` (``None``: standard input, seen from the current
        folder, never committed). Raises ``SettingsError`` for a broken pyproject.toml."""
        folder = self._resolved(path.parent if path is not None else Path.cwd())
        warnings: list[str] = []
        naming: ConcreteNaming
        if self.naming != "auto":
            naming = self.naming
        elif path is None:
            naming = "convention"
        else:
            committed, warning = self._git.committed(path.resolve())
            naming = "database" if committed else "convention"
            if warning:
                warnings.append(warning)
        settings = self._settings_for(folder)
        root = self._pyprojects.get(folder)
        if path is not None and root is not None and settings.per_path:
            try:
                relative = path.resolve().relative_to(root.parent).as_posix()
            except ValueError:
                relative = path.as_posix()
            settings = settings.for_path(relative)
        if settings.metadata:
            settings = self._with_model_convention(settings, root)
        options = Options(
            settings=settings,
            dialect=self.dialect or self._dialect_for(folder),
            naming=naming,
        )
        return Resolved(options, tuple(warnings))

    def _resolved(self, folder: Path) -> Path:
        """``folder.resolve()``, once per folder: every file of a folder asks."""
        if folder not in self._folders:
            self._folders[folder] = folder.resolve()
        return self._folders[folder]

    def _settings_for(self, folder: Path) -> Settings:
        if folder not in self._pyprojects:
            self._pyprojects[folder] = find_pyproject(folder)
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

    def _with_model_convention(self, settings: Settings, pyproject: Path | None) -> Settings:
        """The naming convention of the project's models (``metadata`` setting), read by
        importing the project's own models module: never a revision file."""
        assert settings.metadata is not None
        if settings.metadata not in self._conventions:
            self._conventions[settings.metadata] = _model_convention(
                settings.metadata, pyproject.parent if pyproject else Path.cwd())
        convention = self._conventions[settings.metadata]
        if isinstance(convention, SettingsError):
            raise convention
        return dataclasses.replace(
            settings, naming_convention={**settings.naming_convention, **convention})

    def _dialect_for(self, folder: Path) -> str:
        if folder not in self._dialects:
            ini = find_alembic_ini(folder)
            self._dialects[folder] = (dialect_from_ini(ini) if ini else None) or DEFAULT_DIALECT
        return self._dialects[folder]


def _model_convention(spec: str, root: Path) -> dict[str, str] | SettingsError:
    from sqlalchemy import MetaData

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
    if not isinstance(target, MetaData):
        return SettingsError(f"metadata = {spec!r} is a {type(target).__name__}, not a MetaData")
    return {str(k): v for k, v in target.naming_convention.items()
            if isinstance(k, str) and isinstance(v, str)}


def find_alembic_ini(start: Path) -> Path | None:
    return find_upward(start, "alembic.ini")


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
    """Whether SQLAlchemy (or an installed plugin) has a dialect called ``name``."""
    if not name or not name.replace("_", "").isalnum():
        return False
    if name in _BUILT_IN_DIALECTS:  # without importing SQLAlchemy: the CLI starts faster
        return True
    from sqlalchemy.dialects import registry

    try:
        registry.load(name)
    except Exception:  # NoSuchModuleError, or a plugin that fails to import
        return False
    return True


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
    """Whether a file is in its repository's HEAD commit: one ``git ls-tree`` per repository."""

    def __init__(self) -> None:
        self._toplevels: dict[Path, Path | str | None] = {}
        self._trees: dict[Path, frozenset[str] | str] = {}

    def committed(self, path: Path) -> tuple[bool, str | None]:
        """(committed, warning): outside git, or git unable to say, is "not committed"."""
        toplevel = self._toplevel(path.parent)
        if toplevel is None:
            return False, None
        if isinstance(toplevel, str):
            return False, self._warning(toplevel)
        tree = self._tree(toplevel)
        if isinstance(tree, str):
            return False, self._warning(tree)
        try:
            relative = path.relative_to(toplevel).as_posix()
        except ValueError:
            return False, None
        return relative in tree, None

    @staticmethod
    def _warning(reason: str) -> str:
        return (
            f"git cannot say whether it is committed ({reason}); naming constraints by the "
            "naming convention (pass --naming database if this revision already ran anywhere)"
        )

    def _toplevel(self, folder: Path) -> Path | str | None:
        if folder not in self._toplevels:
            result = _run_git(["rev-parse", "--show-toplevel"], folder)
            if result is None or "not a git repository" in result[1].lower():
                self._toplevels[folder] = None
            elif result[0] != 0:
                self._toplevels[folder] = _first_line(result[1])
            else:
                self._toplevels[folder] = Path(result[2].strip()).resolve()
        return self._toplevels[folder]

    def _tree(self, toplevel: Path) -> frozenset[str] | str:
        if toplevel not in self._trees:
            head = _run_git(["rev-parse", "--verify", "--quiet", "HEAD"], toplevel)
            if head is None or head[0] != 0:  # no commit yet: nothing is committed
                self._trees[toplevel] = frozenset()
            else:
                listed = _run_git(["ls-tree", "-r", "-z", "--name-only", "--full-tree", "HEAD"],
                                  toplevel)
                if listed is None:
                    self._trees[toplevel] = frozenset()
                elif listed[0] != 0:
                    self._trees[toplevel] = _first_line(listed[1])
                else:
                    self._trees[toplevel] = frozenset(n for n in listed[2].split("\0") if n)
        return self._trees[toplevel]


def _run_git(arguments: list[str], folder: Path) -> tuple[int, str, str] | None:
    """(exit status, stderr, stdout); ``None`` when git is not installed."""
    try:
        completed = subprocess.run(
            ["git", *arguments],
            cwd=folder,
            env=_git_env(),
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="surrogateescape",
            check=False,
        )
    except FileNotFoundError:
        return None
    return completed.returncode, completed.stderr, completed.stdout


def _first_line(text: str) -> str:
    return text.strip().partition("\n")[0] or "git failed"
