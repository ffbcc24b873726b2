"""1,900 revision files nobody here wrote (tests/corpus.py), through `check` and `rewrite`.

Every file, with `--dialect postgresql`, naming by the convention and by the database, and
once more with `concurrent_indexes = "explicit"`, goes through `fix_source`:

- nothing raises (no internal error);
- every changed output parses (libcst) and compiles (Python);
- rewriting the output again changes nothing;
- a file with no finding comes back byte for byte;
- `check_source` (what `check` runs: no writer) finds exactly what `fix_source` finds, at the
  same line and column, and in a file with a finding, every statement codemod/positions.py
  locates from `ast` is where libcst's `PositionProvider` puts it;
- what no rule touched comes back byte for byte (see `untouched_problems`);
- the pre-filter never skips a file that has a finding or a change, and each finding's rule
  has its own pre-filter condition true (so no rule leans on another's to be parsed).

Then the CLI on a copy of the whole tree, once per naming: its output is `fix_source`'s, file
for file, its `check --format json` findings are `fix_source`'s (the CLI runs the pre-filter
and the cache, `fix_source` neither: with and without them, identical), no temporary file is
left behind, and a second `rewrite` exits 0.

Run with `-s` to see the table of findings and fixes per project and rule. Offline:
`-m "not corpus"`. tests/corpus_review.md is the by-hand review of a sample of the fixes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import traceback
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import corpus
import libcst as cst
import pytest
from libcst.metadata import MetadataWrapper, PositionProvider

from migrafix.codemod import FileFinding, Options, check_source, fix_source
from migrafix.codemod.positions import StatementPositions
from migrafix.codemod.prefilter import RULE_TESTS, _Code, may_have_findings
from migrafix.codemod.split_parts import SPLIT_REVISION
from migrafix.settings import Settings

pytestmark = pytest.mark.corpus

VARIANTS: Mapping[str, tuple[str, Mapping[str, Any]]] = {
    # name: (naming, settings added to the project's own)
    "convention": ("convention", {}),
    "database": ("database", {}),
    "explicit": ("convention", {"concurrent_indexes": "explicit"}),
}
# The outputs of every variant are checked.
WRITTEN = [
    "convention",
    "database",
    "explicit",
]


@dataclass(frozen=True)
class Task:
    project: str
    member: str
    data: bytes
    variant: str
    settings: Mapping[str, Any]


@dataclass
class Record:
    """What one file gave under one variant."""

    project: str
    member: str
    variant: str
    error: str | None = None
    findings: tuple[FileFinding, ...] = ()
    output: str | None = None  # the fixed text, when it differs
    # The text as one revision, where fix_source split parts off: what the CLI writes when the
    # folder holds a revision that follows this one.
    unsplit: str | None = None
    problems: list[str] = field(default_factory=list)
    skipped_by_prefilter: bool = False
    rules_not_seen_by_prefilter: list[str] = field(default_factory=list)


def options_for(variant: str, project_settings: Mapping[str, Any]) -> Options:
    naming, more = VARIANTS[variant]
    settings = Settings().merged(project_settings, "project").merged(more, variant)
    return Options(settings, "postgresql", naming)  # type: ignore[arg-type]


def analyse(task: Task) -> Record:
    """Runs in a worker process."""
    record = Record(task.project, task.member, task.variant)
    options = options_for(task.variant, task.settings)
    text = task.data.decode("utf-8")
    record.skipped_by_prefilter = not may_have_findings(task.data, options)
    try:
        result = fix_source(text, options)
    except Exception:
        record.error = traceback.format_exc()
        return record
    record.findings = result.findings
    if check_source(text, options) != result.findings:
        record.problems.append(f"check_source finds {check_source(text, options)}, "
                               f"fix_source {result.findings}")
    if result.findings:
        record.problems += position_problems(text)
    code = _Code(task.data)
    for finding in result.findings:
        if finding.rule == SPLIT_REVISION:
            continue  # the fixer's own note on another rule's work, which the test looks at
        seen = RULE_TESTS[finding.rule](code, options)
        if "autocommit_block() commits" in finding.message:
            # the fixer's own report, on a block in the file or one the rule just wrote
            seen = seen or b"autocommit_block" in code.code
        if not seen:
            record.rules_not_seen_by_prefilter.append(finding.rule)
    if result.source == text:
        return record
    record.output = result.source
    if result.unsplit is not None:
        record.unsplit = result.unsplit.source
    try:
        cst.parse_module(result.source)
        compile(result.source, task.member, "exec", dont_inherit=True)
    except Exception as exc:
        record.problems.append(f"the output does not parse or compile: {exc}")
        return record
    again = fix_source(result.source, options)
    if again.source != result.source:
        record.problems.append("a second rewrite changes the output again")
    parts = [new.source or "" for new in result.new_revisions]  # split off beside it
    for part in parts:
        try:
            compile(part, task.member, "exec", dont_inherit=True)
        except Exception as exc:
            record.problems.append(f"a split-off revision does not compile: {exc}")
            return record
        again = fix_source(part, options)
        if again.source != part or again.new_revisions:
            record.problems.append("a second rewrite changes a split-off revision")
    lines = {f.line for f in result.findings}
    record.problems += untouched_problems(text, result.source, lines, parts)
    return record


def position_problems(text: str) -> list[str]:
    module = cst.parse_module(text)
    exact = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    positions = StatementPositions(text, module)
    return [f"{type(node).__name__} at {positions.start(node)}, PositionProvider says "
            f"{(where.start.line, where.start.column + 1)}"
            for node, where in exact.items()
            if isinstance(node, (cst.SimpleStatementLine, cst.BaseCompoundStatement))
            and positions.start(node) not in (None, (where.start.line, where.start.column + 1))]


# --- what no rule touched ---------------------------------------------------------------------


def _is_marker(line: cst.EmptyLine) -> bool:
    """Alembic's `# ### commands auto generated ...` / `# ### end Alembic commands ###`: the
    writer moves them where the statements they belong to went (see
    test_alembic_marker_comment_stays_where_it_was in test_corpus_regressions.py)."""
    return line.comment is not None and line.comment.value.startswith("# ###")


def _unit(module: cst.Module, statement: cst.BaseStatement) -> str:
    """A statement's code with its own comment lines above it, Alembic's markers left out."""
    leading = [line for line in getattr(statement, "leading_lines", ()) if not _is_marker(line)]
    if hasattr(statement, "leading_lines"):
        statement = statement.with_changes(leading_lines=leading)
    return module.code_for_node(statement)


def _function(module: cst.Module, name: str) -> cst.FunctionDef | None:
    for statement in module.body:
        if isinstance(statement, cst.FunctionDef) and statement.name.value == name:
            return statement
    return None


def _body(statement: cst.BaseStatement) -> Sequence[cst.BaseStatement]:
    body = getattr(statement, "body", None)
    return body.body if isinstance(body, cst.IndentedBlock) else ()


def _untouched(
    statements: Sequence[cst.BaseStatement], module: cst.Module,
    positions: Mapping[cst.CSTNode, Any], lines: set[int],
) -> Iterator[str]:
    """The statements no finding points into, outermost first: a `with` block a finding
    points into is opened and its other statements taken one by one."""
    for statement in statements:
        span = positions[statement]
        if not any(span.start.line <= line <= span.end.line for line in lines):
            yield _unit(module, statement)
        elif isinstance(statement, cst.With):
            yield from _untouched(_body(statement), module, positions, lines)


def _all_statements(statements: Sequence[cst.BaseStatement], module: cst.Module) -> Iterator[str]:
    for statement in statements:
        yield _unit(module, statement)
        yield from _all_statements(_body(statement), module)


def _comments(module: cst.Module, node: cst.CSTNode) -> Counter[str]:
    found: Counter[str] = Counter()

    class Collect(cst.CSTVisitor):
        def visit_Comment(self, comment: cst.Comment) -> None:
            found[comment.value.rstrip()] += 1

    node.visit(Collect())
    return found


def untouched_problems(
    original: str, output: str, lines: set[int], parts: Sequence[str] = ()
) -> list[str]:
    """The check behind "statements no rule touched are byte-identical".

    Every finding carries the line of the statement it is about, so a statement of upgrade()
    or downgrade() that contains no finding's line was touched by no rule. Each such statement
    (for a `with` block that contains one, each of its own statements that contains none),
    as source text with the comment lines above it, must be found in the output's statements
    at any depth, in the same order. Any edit to it, or to its comments, breaks the match;
    so does dropping or reordering it. And no comment of either function may disappear (a
    moved statement's go with it into the revisions split off, ``parts``). This
    over-approximates what a rule touched (a whole statement a finding points into), never
    under-approximates: a rule edits only statements of ops it reports.
    """
    problems = []
    before, after = cst.parse_module(original), cst.parse_module(output)
    positions = MetadataWrapper(before, unsafe_skip_copy=True).resolve(PositionProvider)
    for name in ("upgrade", "downgrade"):
        old, new = _function(before, name), _function(after, name)
        if old is None or new is None:
            if old is not new:
                problems.append(f"{name}() disappeared")
            continue
        wanted = list(_untouched(_body(old), before, positions, lines))
        present = iter(list(_all_statements(_body(new), after)))
        # A statement may go, whole, with the work split off (a unique constraint's drop, to
        # the revision that builds it again on downgrade).
        moved = set()
        for part in map(cst.parse_module, parts):
            function = _function(part, name)
            if function is not None:
                moved.update(_all_statements(_body(function), part))
        for unit in wanted:
            if unit in moved:
                continue
            if not any(unit == candidate for candidate in present):
                problems.append(f"{name}(): a statement no rule touched is missing, changed or "
                                f"moved:\n{unit}")
                break
        kept = _comments(after, new)
        for part in map(cst.parse_module, parts):
            function = _function(part, name)
            if function is not None:
                kept += _comments(part, function)
        lost = _comments(before, old) - kept
        if lost:
            problems.append(f"{name}(): comments lost: {sorted(lost)}")
    return problems


# --- the corpus through fix_source ------------------------------------------------------------


@pytest.fixture(scope="session")
def corpus_files() -> dict[str, list[corpus.RevisionFile]]:
    files = corpus.load()  # a download failure is an error here, never a skip
    assert sum(map(len, files.values())) > 1000
    assert all(files.values()), "a project with no revision files"
    return files


@pytest.fixture(scope="session")
def records(corpus_files: dict[str, list[corpus.RevisionFile]]) -> dict[str, list[Record]]:
    tasks = [
        Task(name, f.member, f.data, variant, corpus.PROJECTS_BY_NAME[name].settings)
        for variant in VARIANTS
        for name, files in corpus_files.items()
        for f in files
    ]
    with ProcessPoolExecutor(max(2, os.cpu_count() or 1)) as pool:
        done = list(pool.map(analyse, tasks, chunksize=8))
    by_variant: dict[str, list[Record]] = defaultdict(list)
    for record in done:
        by_variant[record.variant].append(record)
    return by_variant


def _listed(failures: list[str]) -> str:
    return f"{len(failures)} files:\n" + "\n\n".join(failures[:10])


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_no_internal_error(records: dict[str, list[Record]], variant: str) -> None:
    failures = [f"{r.member}\n{r.error}" for r in records[variant] if r.error]
    assert not failures, _listed(failures)


@pytest.mark.parametrize("variant", WRITTEN)
def test_outputs_parse_are_stable_and_keep_what_no_rule_touched(
    records: dict[str, list[Record]], variant: str
) -> None:
    failures = [f"{r.member}: " + "\n".join(r.problems) for r in records[variant] if r.problems]
    assert not failures, _listed(failures)
    assert any(r.output for r in records[variant]), "nothing was rewritten: a broken corpus?"


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_files_without_findings_are_byte_identical(
    records: dict[str, list[Record]], variant: str
) -> None:
    failures = [r.member for r in records[variant] if r.output is not None and not r.findings]
    assert not failures, _listed(failures)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_prefilter_skips_no_file_with_a_finding(
    records: dict[str, list[Record]], variant: str
) -> None:
    lost = [f"{r.member}: {len(r.findings)} findings, changed: {r.output is not None}"
            for r in records[variant]
            if r.skipped_by_prefilter and (r.findings or r.output is not None)]
    assert not lost, _listed(lost)
    unseen = [f"{r.member}: {r.rules_not_seen_by_prefilter}"
              for r in records[variant] if r.rules_not_seen_by_prefilter]
    assert not unseen, _listed(unseen)
    skipped = sum(r.skipped_by_prefilter for r in records[variant])
    print(f"\npre-filter, {variant}: {skipped} of {len(records[variant])} files skipped unparsed")
    if variant == "database":
        # it is worth having where whole released histories are checked; taken for new, most
        # revisions lock a table (lock-timeout), and there is nothing to skip
        assert skipped > len(records[variant]) // 2


def test_findings_table(records: dict[str, list[Record]]) -> None:
    """The table of findings and fixes per project and rule (shown with `pytest -s`)."""
    for variant in ("database", "convention"):
        table = findings_table(records[variant])
        print(f"\n--naming {VARIANTS[variant][0]}, --dialect postgresql\n{table}")
    assert "unnamed-constraint" in findings_table(records["database"])


def findings_table(records: list[Record]) -> str:
    rules = ["concurrent-index", "not-null-add", "unnamed-constraint", "drop-add-rename"]
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for r in records:
        row = counts[r.project]
        row["files"] += 1
        row["changed"] += r.output is not None
        for f in r.findings:
            row[f"{f.rule} found"] += 1
            row[f"{f.rule} fixed"] += f.fixable
    header = ["project", "files", "changed"] + [f"{rule} (fixed/found)" for rule in rules]
    rows = [header, ["---"] * len(header)]
    total: Counter[str] = Counter()
    for project in [p.name for p in corpus.PROJECTS]:
        row = counts[project]
        total.update(row)
        rows.append([project, str(row["files"]), str(row["changed"])]
                    + [f"{row[f'{rule} fixed']}/{row[f'{rule} found']}" for rule in rules])
    rows.append(["total", str(total["files"]), str(total["changed"])]
                + [f"{total[f'{rule} fixed']}/{total[f'{rule} found']}" for rule in rules])
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


# --- the CLI on a copy of the tree ------------------------------------------------------------


def copy_tree(destination: Path, **more_settings: Any) -> dict[str, Path]:
    """Each project's revision files under destination/<project>, with a pyproject.toml
    holding its settings; project name -> its folder."""
    folders = {}
    for project in corpus.PROJECTS:
        folder = destination / project.key
        shutil.copytree(corpus.tree(project), folder, ignore=shutil.ignore_patterns(".complete"))
        settings = {**project.settings, **more_settings}
        (folder / "pyproject.toml").write_text(toml_section("tool.migrafix", settings))
        folders[project.name] = folder
    return folders


def toml_section(name: str, settings: Mapping[str, Any]) -> str:
    lines = [f"[{name}]"]
    tables = []
    for key, value in settings.items():
        if isinstance(value, Mapping) and key == "per_path":
            tables += [f"[{name}.per_path]"] + [f"{json.dumps(k)} = {inline(v)}"
                                                 for k, v in value.items()]
        else:
            lines.append(f"{key} = {inline(value)}")
    return "\n".join(lines + tables) + "\n"


def inline(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{json.dumps(k)} = {inline(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


def migrafix(*args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MIGRAFIX_CACHE_DIR": str(cache)}
    return subprocess.run([sys.executable, "-m", "migrafix.cli", *args], capture_output=True,
                          text=True, env=env, check=False, timeout=900)


@pytest.mark.parametrize("variant", ["convention", "database"])
def test_the_cli_gives_what_fix_source_gives(
    records: dict[str, list[Record]], tmp_path: Path, variant: str
) -> None:
    naming = VARIANTS[variant][0]
    folders = copy_tree(tmp_path / "tree")
    cache = tmp_path / "cache"
    common = ["--dialect", "postgresql", "--naming", naming, "--jobs", "2"]

    checked = migrafix("check", *common, "--format", "json", str(tmp_path / "tree"), cache=cache)
    assert checked.returncode == 1, checked.stderr
    assert ": error: " not in checked.stderr, checked.stderr  # (octavia has request_errors.py)
    reported = Counter((Path(f["file"]).relative_to(tmp_path / "tree").as_posix(), f["line"],
                        f["rule"], f["message"]) for f in json.loads(checked.stdout))

    done = migrafix("rewrite", *common, str(tmp_path / "tree"), cache=cache)
    assert done.returncode == 1, done.stderr
    assert ": error: " not in done.stderr, done.stderr

    expected: Counter[tuple[str, int, str, str]] = Counter()
    mismatched = []
    split_files: set[str] = set()
    for record in records[variant]:
        folder = folders[record.project]
        relative = f"{folder.name}/{record.member}"
        wanted = record.output if record.output is not None else corpus_text(record)
        written = (folder / record.member).read_text(encoding="utf-8")
        if record.unsplit is not None:
            # Split by fix_source; the CLI keeps it whole where a revision follows it (and
            # says why): either form, and its findings are the fixer's own business here.
            split_files.add(relative)
            if written not in (wanted, record.unsplit):
                mismatched.append(relative)
            continue
        expected.update((relative, f.line, f.rule, f.message) for f in record.findings)
        if written != wanted:
            mismatched.append(relative)
    assert not mismatched, _listed(mismatched)
    reported = Counter({key: n for key, n in reported.items() if key[0] not in split_files})
    assert reported == expected
    assert not list((tmp_path / "tree").rglob("*.tmp")), "a temporary file was left behind"

    again = migrafix("rewrite", *common, str(tmp_path / "tree"), cache=cache)
    assert again.returncode == 0, again.stderr
    # Nothing rewritten; what is said again is only why a revision's autocommit work stays in
    # it (a revision follows it, a guard may stop it early), of the files the first run said
    # it of. The revision that follows may have another name now (the `<rev>_pre` the first
    # run split off the next one), and a guard's line moved down by the imports it added.
    notes = again.stderr.splitlines()
    assert all(" split-revision " in line and line.endswith("[note]") for line in notes), notes

    def noted(lines: list[str]) -> set[str]:
        return {line.partition(" split-revision ")[0] for line in lines
                if " split-revision " in line}

    assert noted(notes) <= noted(done.stderr.splitlines())


def corpus_text(record: Record) -> str:
    project = corpus.PROJECTS_BY_NAME[record.project]
    return (corpus.tree(project) / record.member).read_text(encoding="utf-8")


def test_per_path_settings_silence_a_rule_below_a_path(tmp_path: Path) -> None:
    """How a project that runs some migrations on an AUTOCOMMIT connection (dagster runs all
    of its own so) keeps concurrent-index off them: `[tool.migrafix.per_path]`. Shown on
    prefect's PostgreSQL history taken for revisions that have not run, whose index builds
    would otherwise be made concurrent in autocommit blocks."""
    postgresql = "prefect/server/database/_migrations/versions/postgresql/*"
    folders = copy_tree(tmp_path / "tree")
    prefect = folders["prefect"]
    cache = tmp_path / "cache"

    def moved() -> list[str]:
        done = migrafix("check", "--format", "json", "--jobs", "2", "--naming", "convention",
                        str(prefect), cache=cache)
        assert done.returncode == 1, done.stderr
        return [f["file"] for f in json.loads(done.stdout)
                if "moved into an autocommit block" in f["message"]
                and "/versions/postgresql/" in f["file"]]

    assert moved(), "prefect has index builds that are made concurrent"
    (prefect / "pyproject.toml").write_text(toml_section("tool.migrafix", {
        "per_path": {postgresql: {"ignore": ["concurrent-index"]}},
    }))
    assert moved() == []


def test_a_wheel_that_cannot_be_fetched_is_an_error(tmp_path: Path) -> None:
    """Never an empty corpus that passes: pip's own message, and what to do offline."""
    missing = corpus.Project("prefect", "0.0.0.0.1")
    with pytest.raises(corpus.CorpusError, match=r"cannot download prefect==0\.0\.0\.0\.1"):
        corpus.tree(missing, cache=tmp_path)
    assert not list(tmp_path.rglob("*.whl"))
