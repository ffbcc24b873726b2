"""migrafix: make Alembic migrations safe by default.

In env.py::

    context.configure(..., process_revision_directives=migrafix.process_revision_directives)
"""

from migrafix.autogen import Hook, ProcessRevisionDirectives, chain, hook
from migrafix.settings import Settings, SettingsError

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

__version__ = "0.1.0"

#: The hook with the settings of pyproject.toml and ``-x`` only.
process_revision_directives: Hook = hook()
