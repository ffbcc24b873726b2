"""Docs come from the rules' own metadata: the README's table and `migrafix explain`."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from migrafix.docs import rules_table
from migrafix.rules import ALL_RULES, Rule

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_rules_table_is_current() -> None:
    table = re.search(r"<!-- rules-table.*?-->\n(.*?)\n<!-- /rules-table -->",
                      README.read_text(), re.DOTALL)
    assert table is not None
    assert table.group(1) == rules_table()


def migrafix(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "migrafix.cli", *args],
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda r: r.name)
def test_explain_prints_the_rule_page(rule: Rule) -> None:
    result = migrafix("explain", rule.name)
    assert result.returncode == 0
    page = result.stdout
    for heading in ("## Why", "## Fix safety", "## Options"):
        assert heading in page
    for example in rule.examples:
        assert f"## Example: {example.title}" in page
        assert example.fixed_upgrade.strip().splitlines()[0].strip() in page


def test_rules_lists_every_rule() -> None:
    result = migrafix("rules")
    assert result.returncode == 0
    assert [line.split()[0] for line in result.stdout.splitlines()] == [r.name for r in ALL_RULES]


def test_explain_unknown_rule_is_an_error() -> None:
    result = migrafix("explain", "no-such-rule")
    assert result.returncode == 2
    assert "no rule 'no-such-rule'" in result.stderr
