"""Front end 1: rewriting the operation tree before Alembic renders a new revision."""

from migrafix.autogen.hook import Hook, ProcessRevisionDirectives, chain, hook

__all__ = ["Hook", "ProcessRevisionDirectives", "chain", "hook"]
