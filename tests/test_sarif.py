"""``migrafix check --format sarif``: a SARIF 2.1.0 log that GitHub code scanning accepts.

``code_scanning_problems`` checks the properties GitHub's "SARIF support for code scanning"
page marks as required (the log's ``$schema``, ``version`` and ``runs``; each run's
``tool.driver.name``, ``rules`` and ``results``; each rule's ``id``, ``shortDescription.text``,
``fullDescription.text`` and ``help.text``; each result's ``ruleId``, ``message.text`` and a
location with ``artifactLocation.uri`` and a region of start and end line and column), plus
what the SARIF schema says about their types and values.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_cli import CLEAN, FK, FK_UPGRADE_LINE, V, put, run, run_process

from migrafix import __version__
from migrafix.rules import ALL_RULES

LEVELS = {"none", "note", "warning", "error"}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project folder, the current folder."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _text(node: Any, key: str) -> bool:
    value = node.get(key) if isinstance(node, dict) else None
    return isinstance(value, dict) and isinstance(value.get("text"), str) and bool(value["text"])


def _is_uri_reference(uri: Any) -> bool:
    # What a URI reference may hold (RFC 3986): no spaces, backslashes or other raw characters.
    allowed = set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~:/?#[]@!$&'()*+,;=%"
    )
    return isinstance(uri, str) and bool(uri) and set(uri) <= allowed


def _location_problems(where: str, location: Any) -> list[str]:
    physical = location.get("physicalLocation") if isinstance(location, dict) else None
    if not isinstance(physical, dict):
        return [f"{where}: no physicalLocation"]
    problems = []
    if not _is_uri_reference(physical.get("artifactLocation", {}).get("uri")):
        problems.append(f"{where}: artifactLocation.uri is not a URI")
    region = physical.get("region")
    keys = ("startLine", "startColumn", "endLine", "endColumn")
    if not isinstance(region, dict) or not all(
        isinstance(region.get(k), int) and region[k] >= 1 for k in keys
    ):
        return [*problems, f"{where}: region needs {', '.join(keys)}, each >= 1"]
    if (region["endLine"], region["endColumn"]) < (region["startLine"], region["startColumn"]):
        problems.append(f"{where}: region ends before it starts")
    return problems


def code_scanning_problems(log: Any) -> list[str]:
    """What GitHub code scanning would reject or misread in a SARIF log; [] when none."""
    if not isinstance(log, dict):
        return ["the log is not an object"]
    problems = []
    if not isinstance(log.get("$schema"), str):
        problems.append("no $schema")
    if log.get("version") != "2.1.0":
        problems.append(f"version is {log.get('version')!r}, not '2.1.0'")
    runs = log.get("runs")
    if not isinstance(runs, list) or not runs:
        return [*problems, "no runs"]
    for r, run_ in enumerate(runs):
        driver = run_.get("tool", {}).get("driver", {})
        if not isinstance(driver.get("name"), str) or not driver["name"]:
            problems.append(f"runs[{r}]: tool.driver.name missing")
        rules = driver.get("rules")
        if not isinstance(rules, list):
            problems.append(f"runs[{r}]: tool.driver.rules missing")
            rules = []
        ids = [rule.get("id") for rule in rules]
        if len(set(ids)) != len(ids):
            problems.append(f"runs[{r}]: rule ids repeat")
        for i, rule in enumerate(rules):
            where = f"runs[{r}].tool.driver.rules[{i}]"
            if not isinstance(rule.get("id"), str) or not rule["id"]:
                problems.append(f"{where}: no id")
            for key in ("shortDescription", "fullDescription", "help"):
                if not _text(rule, key):
                    problems.append(f"{where}: no {key}.text")
            level = rule.get("defaultConfiguration", {}).get("level", "warning")
            if level not in LEVELS:
                problems.append(f"{where}: level {level!r}")
        results = run_.get("results")
        if not isinstance(results, list):
            problems.append(f"runs[{r}]: no results")
            results = []
        for i, result in enumerate(results):
            where = f"runs[{r}].results[{i}]"
            if result.get("ruleId") not in ids:
                problems.append(f"{where}: ruleId {result.get('ruleId')!r} is not a rule")
            index = result.get("ruleIndex")
            if index is not None and (
                not isinstance(index, int) or not 0 <= index < len(ids)
                or ids[index] != result.get("ruleId")
            ):
                problems.append(f"{where}: ruleIndex does not point at its rule")
            if result.get("level", "warning") not in LEVELS:
                problems.append(f"{where}: level {result.get('level')!r}")
            if not _text(result, "message"):
                problems.append(f"{where}: no message.text")
            locations = result.get("locations")
            if not isinstance(locations, list) or not locations:
                problems.append(f"{where}: no locations")
                continue
            for j, location in enumerate(locations):
                problems += _location_problems(f"{where}.locations[{j}]", location)
        for invocation in run_.get("invocations", []):
            if not isinstance(invocation.get("executionSuccessful"), bool):
                problems.append(f"runs[{r}]: an invocation lacks executionSuccessful")
    return problems


def test_the_validator_finds_what_code_scanning_needs() -> None:
    """The checker itself: a log missing each required piece is rejected for it."""
    assert code_scanning_problems({"version": "2.1.0", "runs": []}) == ["no $schema", "no runs"]
    log = {"$schema": "s", "version": "2.1.0", "runs": [{
        "tool": {"driver": {"name": "t", "rules": [
            {"id": "r", "shortDescription": {"text": "s"}}]}},
        "results": [{"ruleId": "other", "message": {"text": "m"}, "locations": [
            {"physicalLocation": {"artifactLocation": {"uri": "a b.py"},
                                  "region": {"startLine": 3, "startColumn": 1}}}]}],
    }]}
    assert code_scanning_problems(log) == [
        "runs[0].tool.driver.rules[0]: no fullDescription.text",
        "runs[0].tool.driver.rules[0]: no help.text",
        "runs[0].results[0]: ruleId 'other' is not a rule",
        "runs[0].results[0].locations[0]: artifactLocation.uri is not a URI",
        "runs[0].results[0].locations[0]: region needs startLine, startColumn, endLine, "
        "endColumn, each >= 1",
    ]


def test_sarif_log_of_findings(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    put(project / V / "a1_fk.py", FK)
    put(project / V / "a2_clean.py", CLEAN)
    code, out, err = run(capsys, "check", "--naming", "convention", "--format", "sarif", V)
    assert (code, err) == (1, "")
    log = json.loads(out)
    assert code_scanning_problems(log) == []

    (run_,) = log["runs"]
    driver = run_["tool"]["driver"]
    assert (driver["name"], driver["version"]) == ("migrafix", __version__)
    # Every rule of the registry, with its summary and page, whether or not it found anything.
    assert [rule["id"] for rule in driver["rules"]] == [rule.name for rule in ALL_RULES]
    assert [rule["shortDescription"]["text"] for rule in driver["rules"]] == [
        rule.summary for rule in ALL_RULES
    ]
    assert driver["rules"][2]["help"]["text"].startswith("# unnamed-constraint\n")

    # The same findings as the text format, at the same places.
    _, text, _ = run(capsys, "check", "--naming", "convention", V)
    assert len(run_["results"]) == len(text.splitlines()) == 2
    first = run_["results"][0]
    assert first["ruleId"] == "unnamed-constraint" and first["level"] == "warning"
    assert first["message"]["text"].endswith(" [fixable]")
    assert first["message"]["text"] in text.splitlines()[0]
    assert first["locations"] == [{"physicalLocation": {
        "artifactLocation": {"uri": f"{V}/a1_fk.py", "uriBaseId": "%SRCROOT%"},
        "region": {"startLine": FK_UPGRADE_LINE, "startColumn": 5,
                   "endLine": FK_UPGRADE_LINE, "endColumn": 6},
    }}]
    assert run_["invocations"] == [{"executionSuccessful": True, "toolExecutionNotifications": []}]


def test_sarif_log_with_nothing_found(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    put(project / V / "a2_clean.py", CLEAN)
    code, out, _ = run(capsys, "check", "--format", "sarif", V)
    assert code == 0
    log = json.loads(out)
    assert code_scanning_problems(log) == [] and log["runs"][0]["results"] == []


def test_sarif_reports_a_file_that_cannot_be_read_as_a_failed_run(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    put(project / V / "a1_latin1.py", b"#\xff\n" + CLEAN.encode())
    put(project / V / "a2_fk.py", FK)
    code, out, err = run(capsys, "check", "--naming", "convention", "--format", "sarif", V)
    assert code == 2
    reason = "not valid UTF-8 (byte 0xff at offset 1), and no coding line declares another encoding"
    assert err == f"{V}/a1_latin1.py: error: {reason}\n"
    log = json.loads(out)
    assert code_scanning_problems(log) == []
    (run_,) = log["runs"]
    assert len(run_["results"]) == 2  # the other file is still reported
    assert run_["invocations"] == [{
        "executionSuccessful": False,
        "toolExecutionNotifications": [{
            "level": "error",
            "message": {"text": reason},
            "locations": [{"physicalLocation": {"artifactLocation": {
                "uri": f"{V}/a1_latin1.py", "uriBaseId": "%SRCROOT%"}}}],
        }],
    }]


def test_sarif_uris_of_absolute_paths_and_odd_names(project: Path) -> None:
    """A space in a name is escaped; an absolute path becomes a file: URI (a real process)."""
    path = put(project / V / "a1 add fk.py", FK)
    for name, expected in ((f"{V}/a1 add fk.py", {"uri": f"{V}/a1%20add%20fk.py",
                                                  "uriBaseId": "%SRCROOT%"}),
                           (str(path), {"uri": path.as_uri()})):
        done = run_process("check", "--naming", "convention", "--format", "sarif", name,
                           cwd=project)
        assert done.returncode == 1, done.stderr
        log = json.loads(done.stdout)
        assert code_scanning_problems(log) == []
        where = {json.dumps(r["locations"][0]["physicalLocation"]["artifactLocation"])
                 for r in log["runs"][0]["results"]}
        assert where == {json.dumps(expected)}
