"""The rules, in the order they run: renames first (a renamed column is not a new NOT NULL
column), names before indexes are moved (a moved index keeps the name it was given) and before
constraints are validated later or built from an index (a VALIDATE, an ADD CONSTRAINT ... USING
INDEX, names its constraint), and lock timeouts last (the locks a transaction takes are known
once every other rule has moved its ops)."""

from __future__ import annotations

from collections.abc import Mapping

from migrafix.rules.base import Example, Finding, Rule, RuleContext
from migrafix.rules.concurrent_index import ConcurrentIndex
from migrafix.rules.drop_add_rename import DropAddRename
from migrafix.rules.lock_timeout import LockTimeout
from migrafix.rules.not_null_add import NotNullAdd
from migrafix.rules.unique_constraint_add import UniqueConstraintAdd
from migrafix.rules.unnamed_constraint import UnnamedConstraint
from migrafix.rules.validating_constraint_add import ValidatingConstraintAdd

__all__ = ["ALL_RULES", "RULES_BY_NAME", "Example", "Finding", "Rule", "RuleContext"]

ALL_RULES: tuple[Rule, ...] = (
    DropAddRename(),
    NotNullAdd(),
    UnnamedConstraint(),
    ValidatingConstraintAdd(),
    UniqueConstraintAdd(),
    ConcurrentIndex(),
    LockTimeout(),
)

RULES_BY_NAME: Mapping[str, Rule] = {rule.name: rule for rule in ALL_RULES}
