"""How findings and changes are shown: text lines, JSON, GitHub annotations, SARIF, unified
diffs."""

from __future__ import annotations

import difflib
import io
import json
import os
import urllib.parse
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from migrafix.codemod.api import FileFinding
from migrafix.codemod.files import STDIN

if TYPE_CHECKING:
    from migrafix.rules import Rule

__all__ = [
    "FIXABLE",
    "NOT_FIXABLE",
    "github_error",
    "github_finding",
    "json_findings",
    "sarif_log",
    "summary",
    "text_finding",
    "unified_diff",
    "unknown_status",
]

# The suffix of a finding: whether `migrafix rewrite` fixes it, as run or given an option.
FIXABLE = "[fixable]"
FIXABLE_WITH = "[fixable with {option}]"
NOT_FIXABLE = "[fix by hand]"
NOTE = "[note]"


def _marker(finding: FileFinding) -> str:
    if finding.note:
        return NOTE
    if finding.fixable:
        return FIXABLE
    if finding.fixable_with:
        return FIXABLE_WITH.format(option=finding.fixable_with)
    return NOT_FIXABLE


def text_finding(name: str, finding: FileFinding) -> str:
    """``FILE:LINE:COL: rule-name message [fixable]`` (or ``[fixable with --OPTION]``,
    ``[fix by hand]``, or ``[note]``)."""
    return (
        f"{name}:{finding.line}:{finding.column}: {finding.rule} {finding.message} "
        f"{_marker(finding)}"
    )


def summary(findings: Sequence[FileFinding], files: int) -> str:
    notes = sum(1 for f in findings if f.note)
    findings = [f for f in findings if not f.note]
    if not findings:
        return f"No findings; {notes} {'note' if notes == 1 else 'notes'}."
    fixable = sum(1 for f in findings if f.fixable)
    options = sorted({f.fixable_with for f in findings if not f.fixable and f.fixable_with})
    with_option = sum(1 for f in findings if not f.fixable and f.fixable_with)
    noun = "finding" if len(findings) == 1 else "findings"
    where = "1 file" if files == 1 else f"{files} files"
    more = f" {with_option} given {' or '.join(options)}," if with_option else ""
    also = f" Also {notes} {'note' if notes == 1 else 'notes'}." if notes else ""
    return (
        f"Found {len(findings)} {noun} in {where}; {fixable} fixable by `migrafix rewrite`,"
        f"{more} {len(findings) - fixable - with_option} to fix by hand.{also}"
    )


def unknown_status(reason: str, names: Sequence[str]) -> str:
    """The one line saying that ``--naming auto`` took these files for released because git
    could not say whether they are committed (``reason``), and how to choose instead."""
    if list(names) == [STDIN]:
        where = "standard input"
    else:
        folders = {os.path.dirname(name) for name in names}
        try:
            folder = os.path.commonpath(folders)
        except ValueError:  # relative and absolute names
            folder = os.path.commonpath({os.path.abspath(f) for f in folders})
        noun = "revision file" if len(names) == 1 else "revision files"
        where = f"{len(names):,} {noun} under {folder or os.curdir}"
    they, were = ("it", "was") if len(names) == 1 else ("they", "were")
    return (
        f"migrafix: warning: {where}: {reason}, so whether {they} already ran is unknown; "
        f"{they} {were} taken for released, constraints named as the database names them "
        "(--naming database). Pass --naming convention for revisions that have not run "
        "anywhere."
    )


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_finding(name: str, finding: FileFinding) -> str:
    """A GitHub Actions workflow command: the finding shows on the line in the pull request."""
    return (
        f"::{'notice' if finding.note else 'warning'} file={_escape_property(name)},"
        f"line={finding.line},col={finding.column},"
        f"title={_escape_property(finding.rule)}::"
        f"{_escape_data(finding.message)} {_marker(finding)}"
    )


def github_error(name: str | None, reason: str) -> str:
    """An error annotation on a file, or (``None``) on the run."""
    where = f"file={_escape_property(name)}," if name is not None else ""
    return f"::error {where}title=migrafix::{_escape_data(reason)}"


def json_findings(findings: Iterable[tuple[str, FileFinding]]) -> str:
    """A JSON array: one object per finding, in the order the files were given."""
    return json.dumps(
        [
            {
                "file": name,
                "line": finding.line,
                "column": finding.column,
                "rule": finding.rule,
                "message": finding.message,
                "fixable": finding.fixable,
                "fixable_with": finding.fixable_with,
                "note": finding.note,
            }
            for name, finding in findings
        ],
        indent=2,
    )


SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"


def sarif_log(
    findings: Sequence[tuple[str, FileFinding]],
    errors: Sequence[tuple[str, str]],
    rules: Sequence[Rule],
    version: str,
) -> str:
    """A SARIF 2.1.0 log for GitHub code scanning: the rules (from the rule registry, and any
    rule a finding names that the registry lacks), one result per finding, and the files that
    could not be processed as error notifications of an unsuccessful run."""
    from migrafix.docs import rule_page

    descriptors: list[dict[str, Any]] = [
        {
            "id": rule.name,
            "shortDescription": {"text": rule.summary},
            "fullDescription": {"text": rule.why},
            "help": {"text": rule_page(rule), "markdown": rule_page(rule)},
            "defaultConfiguration": {"level": "warning"},
        }
        for rule in rules
    ]
    index = {descriptor["id"]: i for i, descriptor in enumerate(descriptors)}
    for _, finding in findings:
        if finding.rule not in index:
            index[finding.rule] = len(descriptors)
            descriptors.append({
                "id": finding.rule,
                "shortDescription": {"text": finding.rule},
                "fullDescription": {"text": finding.rule},
                "help": {"text": f"migrafix explain {finding.rule}"},
            })
    results = [
        {
            "ruleId": finding.rule,
            "ruleIndex": index[finding.rule],
            "level": "note" if finding.note else "warning",
            "message": {"text": f"{finding.message} {_marker(finding)}"},
            "locations": [_sarif_location(name, finding.line, finding.column)],
            "properties": {"fixable": finding.fixable},
        }
        for name, finding in findings
    ]
    notifications = [
        {
            "level": "error",
            "message": {"text": reason},
            "locations": [{"physicalLocation": {"artifactLocation": _sarif_artifact(name)}}],
        }
        for name, reason in errors
    ]
    run = {
        "tool": {
            "driver": {
                "name": "migrafix",
                "version": version,
                "semanticVersion": version,
                "rules": descriptors,
            }
        },
        # FileFinding.column counts characters, not UTF-16 code units (SARIF's default).
        "columnKind": "unicodeCodePoints",
        "results": results,
        "invocations": [
            {"executionSuccessful": not errors, "toolExecutionNotifications": notifications}
        ],
    }
    return json.dumps({"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}, indent=2)


def _sarif_artifact(name: str) -> dict[str, str]:
    """A relative path stays relative to the checkout (code scanning's %SRCROOT%); an absolute
    one becomes a file: URI."""
    path = Path(name)
    if path.is_absolute():
        return {"uri": path.as_uri()}
    return {"uri": urllib.parse.quote(path.as_posix()), "uriBaseId": "%SRCROOT%"}


def _sarif_location(name: str, line: int, column: int) -> dict[str, Any]:
    # A finding marks where its statement starts: the region is that one character.
    region = {"startLine": line, "startColumn": column, "endLine": line, "endColumn": column + 1}
    return {"physicalLocation": {"artifactLocation": _sarif_artifact(name), "region": region}}


def _lines(text: str) -> list[str]:
    # Split at \n, \r\n and \r only, keeping each line's own ending (str.splitlines would also
    # split at form feeds and other characters Python does not treat as line ends).
    return io.StringIO(text, newline="").readlines()


def unified_diff(name: str, old: str, new: str, *, created: bool = False) -> str:
    """A unified diff (``patch -p0`` applies it); a last line without a newline is marked.
    ``created``: the diff of a new file, from /dev/null."""
    out: list[str] = []
    source = "/dev/null" if created else name
    for line in difflib.unified_diff(_lines(old), _lines(new), fromfile=source, tofile=name):
        if line.endswith(("\n", "\r")):
            out.append(line)
        else:
            out.append(f"{line}\n\\ No newline at end of file\n")
    return "".join(out)
