"""``migrafix`` on the command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from migrafix.docs import rule_page
from migrafix.rules import ALL_RULES, RULES_BY_NAME

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="migrafix", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("rules", help="list the rules")
    explain = commands.add_parser("explain", help="print a rule's page")
    explain.add_argument("rule")
    args = parser.parse_args(argv)

    if args.command == "rules":
        width = max(len(rule.name) for rule in ALL_RULES)
        for rule in ALL_RULES:
            print(f"{rule.name:<{width}}  {rule.summary}")
        return 0
    explained = RULES_BY_NAME.get(args.rule)
    if explained is None:
        print(f"migrafix: no rule {args.rule!r}; rules: {', '.join(RULES_BY_NAME)}",
              file=sys.stderr)
        return 2
    print(rule_page(explained))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
