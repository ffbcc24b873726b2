"""Front end 1: the ``process_revision_directives`` hook for ``alembic revision --autogenerate``."""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from alembic.operations import ops
from alembic.runtime.migration import MigrationContext
from alembic.util import CommandError
from sqlalchemy import MetaData

import migrafix.ops  # noqa: F401  (registers the renderers of migrafix's ops)
from migrafix.autogen.split import split_revision
from migrafix.engine import fix_revision
from migrafix.rules import RuleContext
from migrafix.rules.base import log
from migrafix.rules.drop_add_rename import ask_at_terminal
from migrafix.settings import (
    Settings,
    SettingsError,
    find_pyproject,
    load_pyproject,
    x_arguments_to_raw,
)

__all__ = ["Hook", "ProcessRevisionDirectives", "chain", "hook"]

ProcessRevisionDirectives = Callable[
    [MigrationContext, "str | Sequence[str | None] | Sequence[str]", list[ops.MigrationScript]],
    None,
]


class _SettingsCommandError(SettingsError, CommandError):
    """A bad setting where Alembic runs the hook. Alembic's CLI prints a ``CommandError`` as
    its own errors, ``FAILED: <message>``, where any other exception ends in a traceback."""


class Hook:
    """A ``process_revision_directives`` callable. Settings, lowest first: ``[tool.migrafix]``
    of the pyproject.toml nearest alembic.ini, ``hook(...)`` arguments, ``-x`` arguments.
    A bad setting raises ``SettingsError`` (which is also Alembic's ``CommandError``)."""

    def __init__(self, settings: Mapping[str, Any] | None = None) -> None:
        self.code_settings = dict(settings or {})
        with _as_command_error():
            Settings().merged(self.code_settings, "migrafix.hook()")  # fail at import, not later

    def __call__(
        self,
        context: MigrationContext,
        revision: str | Sequence[str | None] | Sequence[str],
        directives: list[ops.MigrationScript],
    ) -> None:
        settings = self.settings_for(context)
        if getattr(context, "_in_external_transaction", False):
            settings = _without_autocommit_work(settings)
        # `alembic check` reads only the last script generated: split, it would list only the
        # concurrent indexes as pending.
        split = settings.split_concurrent_revisions and not _is_check_command(context)
        render_as_batch = bool(context.opts.get("render_as_batch"))
        for script in directives:
            rule_context = RuleContext(
                settings=settings,
                dialect=context.dialect,
                naming_convention=_naming_convention(context.opts.get("target_metadata")),
                ask=ask_at_terminal if settings.interactive and sys.stdin.isatty() else None,
                separate_revisions=split and len(script.upgrade_ops_list) == 1,
                in_batch=lambda group: render_as_batch,
            )
            for upgrade, downgrade in zip(
                script.upgrade_ops_list, script.downgrade_ops_list, strict=True
            ):
                fix_revision(upgrade, downgrade, rule_context)
        if split:
            directives[:] = [part for script in directives for part in _split(script)]

    def settings_for(self, context: MigrationContext) -> Settings:
        with _as_command_error():
            return self._settings_for(context)

    def _settings_for(self, context: MigrationContext) -> Settings:
        settings = Settings()
        config = context.config
        ini = getattr(config, "config_file_name", None) if config is not None else None
        pyproject = find_pyproject(Path(ini).resolve().parent) if ini else None
        if pyproject is not None:
            settings = settings.merged(load_pyproject(pyproject), f"{pyproject} [tool.migrafix]")
        settings = settings.merged(self.code_settings, "migrafix.hook()")
        x_args = getattr(getattr(config, "cmd_opts", None), "x", None) or []
        return settings.merged(x_arguments_to_raw(x_args), "alembic -x")


# The rules whose forms need an autocommit block: a concurrent build, a VALIDATE or a batch
# that commits on its own.
AUTOCOMMIT_RULES = ("concurrent-index", "unique-constraint-add", "validating-constraint-add")


def _without_autocommit_work(settings: Settings) -> Settings:
    """The settings for an env.py that runs the migrations in a transaction of its own
    (``connection.begin()`` before ``context.configure``): Alembic's ``autocommit_block()``
    cannot end that transaction, and fails there. The rules that write one are off, and
    nothing goes to a revision of its own (a batched backfill stays one UPDATE in the
    migration's transaction), rather than revisions that cannot run."""
    off = [name for name in AUTOCOMMIT_RULES if name not in settings.ignore]
    log.warning(
        "env.py runs the migrations in a transaction of its own, where autocommit blocks "
        "cannot run: %s written as in one transaction (indexes and constraints built, "
        "backfills run, under the migration's locks); to have them, let Alembic open the "
        "transaction (`with context.begin_transaction():` after `context.configure`)",
        ", ".join([*off, "not-null-add's batched backfill"]))
    return dataclasses.replace(settings, ignore=(*settings.ignore, *off),
                               split_concurrent_revisions=False)


def hook(**settings: Any) -> Hook:
    """A hook with settings given in code (they override pyproject.toml; ``-x`` overrides
    them), e.g. ``migrafix.hook(renames=["customer.name:full_name"])``."""
    return Hook(settings)


def chain(*hooks: ProcessRevisionDirectives) -> ProcessRevisionDirectives:
    """One ``process_revision_directives`` that runs ``hooks`` in order, e.g.
    ``chain(geoalchemy2.alembic_helpers.writer, migrafix.process_revision_directives)``."""

    def run_all(
        context: MigrationContext,
        revision: str | Sequence[str | None] | Sequence[str],
        directives: list[ops.MigrationScript],
    ) -> None:
        for each in hooks:
            each(context, revision, directives)

    return run_all


def _split(script: ops.MigrationScript) -> list[ops.MigrationScript]:
    """``script`` as its revisions, and a word on the console when it is more than one: a user
    who runs `downgrade -1`, or deletes one file to regenerate, would otherwise be surprised."""
    parts = split_revision(script)
    if len(parts) > 1:
        log.info("this revision is written as %s (autocommit work in revisions of its own): "
                 "`alembic downgrade %s-1` undoes them all; to regenerate it, delete all of "
                 "them", ", ".join(str(part.rev_id) for part in parts), parts[0].rev_id)
    return parts


@contextlib.contextmanager
def _as_command_error() -> Iterator[None]:
    try:
        yield
    except SettingsError as exc:
        raise _SettingsCommandError(str(exc)) from None


def _is_check_command(context: MigrationContext) -> bool:
    command: Any = getattr(getattr(context.config, "cmd_opts", None), "cmd", None)
    return bool(command) and getattr(command[0], "__name__", None) == "check"


def _naming_convention(target_metadata: Any) -> Mapping[Any, str]:
    candidates = target_metadata if isinstance(target_metadata, Sequence) else [target_metadata]
    for metadata in candidates:
        if isinstance(metadata, MetaData) and metadata.naming_convention:
            return {key: value for key, value in metadata.naming_convention.items()
                    if isinstance(value, str)}  # callables are convention tokens, not names
    return {}
