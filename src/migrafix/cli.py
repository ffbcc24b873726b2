"""``migrafix`` on the command line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from migrafix import __version__
from migrafix.codemod.api import FileFinding
from migrafix.codemod.cache import ResultCache
from migrafix.codemod.files import STDIN, Candidate, discover
from migrafix.codemod.project import known_dialect
from migrafix.codemod.report import (
    github_error,
    github_finding,
    json_findings,
    sarif_log,
    summary,
    text_finding,
    unknown_status,
)
from migrafix.codemod.runner import Job, Outcome, ProjectSpec, run
from migrafix.codemod.split_parts import SPLIT_REVISION, orphaned_parts
from migrafix.settings import SettingsError

__all__ = ["main"]

PATHS_HELP = (
    "revision files, or folders: every revision file below them (a .py file with a "
    "module-level `revision = ...` and a `def upgrade`); other files are skipped. "
    "`-` reads standard input"
)


def _dialect(value: str) -> str:
    name = value.strip().lower()
    if not known_dialect(name):
        raise argparse.ArgumentTypeError(f"no SQLAlchemy dialect called {value!r}")
    return name


def _jobs(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise argparse.ArgumentTypeError(f"expected a number of processes, got {value!r}")
    return number


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("paths", nargs="+", metavar="PATH", help=PATHS_HELP)
    group = common.add_argument_group(
        "settings",
        "added to [tool.migrafix] of the pyproject.toml nearest to each file: renames and "
        "backfills add to it, --select and --ignore replace it",
    )
    group.add_argument(
        "--rename", action="append", metavar="TABLE.OLD:NEW",
        help="a column rename (TABLE.OLD:NEW, TABLE may be SCHEMA.TABLE) or a table rename "
             "(OLD_TABLE:NEW_TABLE, or SCHEMA.OLD_TABLE:SCHEMA.NEW_TABLE); repeats",
    )
    group.add_argument(
        "--backfill", action="append", metavar="TABLE.COLUMN=SQL",
        help="the SQL value a new NOT NULL column is filled with; repeats",
    )
    group.add_argument(
        "--select", action="append", metavar="RULE[,RULE]",
        help="run only these rules (see `migrafix rules`); repeats",
    )
    group.add_argument(
        "--ignore", action="append", metavar="RULE[,RULE]", help="do not run these rules; repeats"
    )
    common.add_argument(
        "--dialect", type=_dialect, metavar="NAME",
        help="the database dialect (default: the scheme of sqlalchemy.url in the alembic.ini "
        "nearest to each file, else postgresql)",
    )
    common.add_argument(
        "--naming", choices=("auto", "convention", "database"), default="auto",
        help="how unnamed constraints get their name: 'convention' (the naming convention: a "
        "revision that has not run anywhere yet), 'database' (the name the database gave them "
        "when the revision ran). 'auto' (default), per file: 'convention' if git has it as a "
        "new file (untracked or staged), 'database' if git's HEAD commit has it, and "
        "'database' with a warning when git cannot say (not in a git checkout, ignored by "
        "git, git missing or failing, standard input)",
    )
    common.add_argument(
        "--released-in", metavar="REF", default="HEAD",
        help="with --naming auto: the git commit whose revision files are released (default "
        "HEAD). In CI, where a pull request's new files are committed too, name the branch "
        "it merges into, e.g. origin/main",
    )
    common.add_argument(
        "-j", "--jobs", type=_jobs, default=1, metavar="N",
        help="files processed in parallel (default 1; 0: one per CPU); output keeps input order",
    )
    common.add_argument(
        "--no-cache", action="store_true",
        help="neither read nor write the result cache ($MIGRAFIX_CACHE_DIR, else "
        "~/.cache/migrafix: results keyed by each file's content, its settings and migrafix's "
        "version)",
    )
    return common


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="migrafix", description=__doc__)
    parser.add_argument("--version", action="version", version=f"migrafix {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("rules", help="list the rules")
    explain = commands.add_parser("explain", help="print a rule's page")
    explain.add_argument("rule")

    common = _common_options()
    rewrite = commands.add_parser(
        "rewrite", parents=[common], help="fix revision files in place",
        description="Fix revision files in place. Exit status: 0 nothing changed, 1 a file "
        "changed (or would change), 2 a file could not be processed.",
    )
    rewrite.add_argument(
        "--diff", action="store_true", help="print a unified diff of the changes; write nothing"
    )
    rewrite.add_argument(
        "--check", action="store_true",
        help="write nothing; exit 1 when a file would change ('Would rewrite FILE')",
    )
    rewrite.add_argument(
        "--exit-zero-even-if-changed", action="store_true",
        help="exit 0 when files changed (still 2 when a file could not be processed)",
    )
    check = commands.add_parser(
        "check", parents=[common], help="report what rewrite would fix, and what it cannot",
        description="Report findings, one per line: FILE:LINE:COL: RULE MESSAGE, then "
        "[fixable] (`migrafix rewrite` fixes it), [fixable with --OPTION] (it does, given "
        "that option: the message says with what), [fix by hand], or [note] (for the "
        "reviewer, not a defect). Writes nothing. Exit status: 0 no findings (notes do not "
        "count), 1 findings, 2 a file could not be processed.",
    )
    check.add_argument(
        "--format", choices=("text", "json", "github", "sarif"), default="text",
        help="text lines (default), a JSON array, GitHub Actions annotations, or a SARIF 2.1.0 "
        "log for GitHub code scanning",
    )
    return parser


# What a shell reports for a program SIGPIPE ended (128 + 13), as `yes | head` ends `yes`.
EXIT_BROKEN_PIPE = 141


def main(argv: Sequence[str] | None = None) -> int:
    try:
        code = _main(argv)
        sys.stdout.flush()  # inside the try: a flush at exit would fail outside it
    except BrokenPipeError:
        # The reader went away (`migrafix explain RULE | head`, or of stderr): stop without a
        # word, as well-behaved tools do. Python flushes both once more at exit, which must
        # not fail in turn: whatever is left goes nowhere.
        devnull = os.open(os.devnull, os.O_WRONLY)
        for stream in (sys.stdout, sys.stderr):
            os.dup2(devnull, stream.fileno())
        os.close(devnull)
        return EXIT_BROKEN_PIPE
    return code


def _main(argv: Sequence[str] | None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)

    if args.command in ("rules", "explain"):
        return _rules(args)
    if args.paths.count(STDIN) > 1:
        parser.error("`-` (standard input) can be given once")
    return _run(args)


def _rules(args: argparse.Namespace) -> int:
    # Imported here: the rules bring SQLAlchemy and Alembic, which `check` answered from its
    # cache never needs.
    from migrafix.docs import rule_page
    from migrafix.rules import ALL_RULES, RULES_BY_NAME

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


def _command_line_settings(args: argparse.Namespace) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    for option, key in (("rename", "renames"), ("backfill", "backfill"),
                        ("select", "select"), ("ignore", "ignore")):
        value = getattr(args, option)
        if value is not None:
            raw[key] = value
    return raw


def _run(args: argparse.Namespace) -> int:
    rewriting = args.command == "rewrite"
    write = rewriting and not (args.diff or args.check)
    diff = rewriting and args.diff
    spec = ProjectSpec(_command_line_settings(args), args.dialect, args.naming,
                       args.released_in)
    try:
        spec.build()  # the command line's settings are checked before anything is read
    except SettingsError as exc:
        print(f"migrafix: error: {exc}", file=sys.stderr)
        return 2
    jobs: list[Job] = []
    for candidate in discover(args.paths):
        data = sys.stdin.buffer.read() if candidate.path is None else None
        jobs.append(Job(candidate, write=write, diff=diff, data=data, fix=rewriting))
    cache = None if args.no_cache else ResultCache()
    revisions = 0

    def counted(outcomes: Iterable[Outcome]) -> Iterator[Outcome]:
        nonlocal revisions
        for outcome in outcomes:
            revisions += outcome.status != "skipped"
            yield outcome

    outcomes = counted(run(jobs, spec, args.jobs, cache=cache))
    if rewriting:
        code = _report_rewrite(args, outcomes)
    else:
        code = _report_check(args, outcomes, [job.candidate for job in jobs
                                              if job.candidate.path is not None])
    if not revisions:
        # Said, as ruff and black say it, so that a wrong path is not taken for a clean tree;
        # not an error (exit 0, as theirs): a pre-commit run may pass only an __init__.py.
        why = ("no .py file" if not jobs else
               f"{len(jobs)} {'file' if len(jobs) == 1 else 'files'}, none with a module-level "
               "`revision = ...` and a `def upgrade`")
        print(f"migrafix: warning: no revision files in {' '.join(args.paths)} ({why})",
              file=sys.stderr)
    return code


class _Errors:
    """Prints each file's error; an error in the settings (a broken pyproject.toml), which
    every file they govern shares, once, as the command line's own errors are printed."""

    def __init__(self, github: bool = False) -> None:
        self.github = github
        self.seen: set[str] = set()
        self.any = False

    def __call__(self, outcome: Outcome) -> None:
        self.any = True
        reason = outcome.error or ""
        if not outcome.in_settings:
            print(f"{outcome.name}: error: {reason}", file=sys.stderr)
            if self.github:
                print(github_error(outcome.name, reason))
        elif reason not in self.seen:
            self.seen.add(reason)
            print(f"migrafix: error: {reason}", file=sys.stderr)
            if self.github:
                print(github_error(None, reason))


class _UnknownStatus:
    """The files ``--naming auto`` took for released because git could not say, by reason:
    one warning for each reason at the end of the run, not one per file."""

    def __init__(self) -> None:
        self.names: dict[str, list[str]] = {}

    def add(self, outcome: Outcome) -> None:
        if outcome.status_unknown is not None:
            self.names.setdefault(outcome.status_unknown, []).append(outcome.name)

    def warn(self) -> None:
        for reason, names in self.names.items():
            print(unknown_status(reason, names), file=sys.stderr)


def _print_bytes(data: bytes) -> None:
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def _report_rewrite(args: argparse.Namespace, outcomes: Iterable[Outcome]) -> int:
    error = _Errors()
    changed = False
    unknown = _UnknownStatus()
    for outcome in outcomes:
        unknown.add(outcome)
        for finding in outcome.findings:
            if finding.rule == SPLIT_REVISION:  # why its autocommit work stays in the file
                print(text_finding(outcome.name, finding), file=sys.stderr)
        if outcome.status == "error":
            error(outcome)
        elif outcome.status == "changed":
            changed = True
            if args.diff:
                sys.stdout.write(outcome.diff or "")
            if args.check:
                print(f"Would rewrite {outcome.name}", file=sys.stderr)
                for created, revision in outcome.created:
                    print(f"Would create {created} ({_split_off(revision)})", file=sys.stderr)
            elif not args.diff and outcome.name != STDIN:
                print(f"Rewriting {outcome.name}", file=sys.stderr)
                for created, revision in outcome.created:
                    print(f"Created {created} ({_split_off(revision)})", file=sys.stderr)
        if outcome.output is not None:
            _print_bytes(outcome.output)
    unknown.warn()
    if error.any:
        return 2
    return int(changed and not args.exit_zero_even_if_changed)


def _split_off(revision: str) -> str:
    """What a file created beside a revision holds: "revision 0002_post, after 0002: ..."."""
    main, _, part = revision.rpartition("_")
    where = "after" if part == "post" else "before"
    return f"revision {revision}, {where} {main}: its autocommit work, in a revision of its own"


def _report_check(
    args: argparse.Namespace, outcomes: Iterable[Outcome], candidates: Sequence[Candidate]
) -> int:
    unprocessed: list[tuple[str, str]] = []  # for SARIF: (file, reason)
    found: list[tuple[str, FileFinding]] = []
    files = 0
    github = args.format == "github"
    error = _Errors(github)
    unknown = _UnknownStatus()
    reports = []
    revisions: dict[str, str | None] = {}  # by name: the revision id each file assigns
    for outcome in outcomes:
        unknown.add(outcome)
        revisions[outcome.name] = outcome.revision
        if outcome.status == "error":
            error(outcome)
            unprocessed.append((outcome.name, outcome.error or ""))
        reports.append((outcome.name, outcome.findings))
    # The history across files: a split-off revision whose main revision is gone, told from
    # the ids the run read (other files of a folder are read only where one was not checked).
    checked = [(c.path, revisions.get(c.name)) for c in candidates if c.path is not None]
    reports += [(str(path), (finding,)) for path, finding in orphaned_parts(checked)]
    for name, findings in reports:
        files += bool(findings)
        for finding in findings:
            found.append((name, finding))
            if args.format == "text":
                print(text_finding(name, finding))
            elif github:
                print(github_finding(name, finding))
    if args.format == "json":
        print(json_findings(found))
    elif args.format == "sarif":
        from migrafix.rules import ALL_RULES  # brings SQLAlchemy: only for this format

        print(sarif_log(found, unprocessed, ALL_RULES, __version__))
    unknown.warn()
    if args.format == "text" and found:
        print(summary([f for _, f in found], files), file=sys.stderr)
    if error.any:
        return 2
    return int(any(not finding.note for _, finding in found))


if __name__ == "__main__":
    raise SystemExit(main())
