"""migrafix: make Alembic migrations safe by default.

In env.py::

    context.configure(..., process_revision_directives=migrafix.process_revision_directives)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from migrafix.settings import Settings, SettingsError

if TYPE_CHECKING:
    from migrafix.autogen.hook import Hook, ProcessRevisionDirectives, chain, hook

    #: The hook with the settings of pyproject.toml and ``-x`` only.
    process_revision_directives: Hook

__all__ = [
    "Hook",
    "ProcessRevisionDirectives",
    "Settings",
    "SettingsError",
    "__version__",
    "chain",
    "hook",
    "process_revision_directives",
]

# The one place the version is written: pyproject.toml reads it from here when a wheel is built.
__version__ = "0.1.0"

_HOOK_NAMES = frozenset({"Hook", "ProcessRevisionDirectives", "chain", "hook"})


def __getattr__(name: str) -> Any:
    """The hook and its helpers, imported on first use: `migrafix check` and `rewrite` never
    need Alembic's autogenerate machinery, and start faster without it."""
    if name not in _HOOK_NAMES and name != "process_revision_directives":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from migrafix import autogen

    value = autogen.hook() if name == "process_revision_directives" else getattr(autogen, name)
    globals()[name] = value
    return value
