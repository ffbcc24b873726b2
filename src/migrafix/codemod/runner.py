"""One file through the codemod: read, check, fix, maybe write; and many files, maybe in parallel.

A file is read, resolved to its ``Options`` and looked up in the result cache by the parent
process; only files the cache has not seen are fixed, in worker processes when ``jobs`` > 1.
Before parsing, the pre-filter (codemod/prefilter.py) tells from a file's bytes whether it can
hold a finding at all: one that cannot is only checked to compile. Writes and diffs happen in
the parent.

Nothing here raises for a bad file: what went wrong is in the ``Outcome``, and the file is
left byte for byte as it was. Outcomes come back in the order the files were given, whatever
``jobs`` is, so output does not depend on scheduling.
"""

from __future__ import annotations

import ast
import os
import traceback
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from migrafix.codemod.api import FileFinding, Naming, Options
from migrafix.codemod.cache import Entry, ResultCache
from migrafix.codemod.files import (
    Candidate,
    NotDecodable,
    decode,
    describe_encode_error,
    describe_os_error,
    describe_parse_error,
    encode,
    looks_like_revision,
    read_bytes,
    write_atomic,
)
from migrafix.codemod.prefilter import may_have_findings
from migrafix.codemod.project import Project
from migrafix.codemod.report import unified_diff
from migrafix.settings import SettingsError

__all__ = ["Job", "Outcome", "ProjectSpec", "compiles", "fix_file", "process", "run"]

# "checked": the findings are known, the fixed text was not asked for (``Job.fix``).
Status = Literal["skipped", "unchanged", "changed", "checked", "error"]


@dataclass(frozen=True)
class ProjectSpec:
    """What a ``Project`` is built from."""

    command_line: Mapping[str, Any]
    dialect: str | None
    naming: Naming
    released_in: str = "HEAD"

    def build(self) -> Project:
        return Project(self.command_line, self.dialect, self.naming, self.released_in)


@dataclass(frozen=True)
class Job:
    candidate: Candidate
    write: bool  # write a changed file (for standard input: print the result)
    diff: bool  # make a unified diff of the change
    data: bytes | None = None  # standard input's bytes, read by the parent process
    # Compute the fixed text. ``check`` needs only the findings, which cost a fraction of it:
    # no writer, no black, no imports pass.
    fix: bool = True


@dataclass(frozen=True)
class Outcome:
    name: str
    status: Status
    error: str | None = None
    findings: tuple[FileFinding, ...] = ()
    diff: str | None = None
    output: bytes | None = None  # for standard input: what to print on standard output
    # The error is the settings' (a pyproject.toml, the models it names), not the file's:
    # every file they govern has it, and it is said once.
    in_settings: bool = False
    # --naming auto: why git could not say whether the file is committed (``Resolved``)
    status_unknown: str | None = None


@dataclass(frozen=True)
class _Work:
    """A file the cache could not answer for: what a worker needs to fix it."""

    name: str
    data: bytes
    options: Options
    prefilter: bool
    fix: bool


@dataclass(frozen=True)
class _Fixed:
    """A worker's answer: an ``Entry``, or why there is none."""

    entry: Entry | None
    error: str | None = None
    findings: tuple[FileFinding, ...] = ()  # known even when the fixed code is refused


@dataclass(frozen=True)
class _Pending:
    job: Job
    work: _Work
    status_unknown: str | None
    key: str | None  # the cache key, when there is a cache


def fix_file(work: _Work) -> _Fixed:
    """Fix one file's bytes (known to decode). Runs in worker processes."""
    decoded = decode(work.data)
    if (
        work.prefilter
        and not may_have_findings(decoded.utf8 or work.data, work.options)
        and compiles(decoded.text, work.name)
    ):
        return _Fixed(Entry((), None))
    # (a file that does not compile is reported exactly as one that went through the fixer)
    # Imported on first use: libcst, SQLAlchemy and Alembic cost more to import than a run
    # answered by the cache and the pre-filter costs in all.
    import libcst as cst

    from migrafix.codemod.fixer import check_source, fix_source

    try:
        if not work.fix:
            return _Fixed(Entry(check_source(decoded.text, work.options), None, complete=False))
        result = fix_source(decoded.text, work.options)
    except cst.ParserSyntaxError as exc:
        return _Fixed(None, describe_parse_error(decoded.text, work.name, exc))
    except Exception as exc:
        details = "".join(traceback.format_exception(exc)).rstrip()
        return _Fixed(None, f"internal error, file left as it was; please report:\n{details}")
    try:
        if encode(result.source, decoded.encoding) == work.data:
            return _Fixed(Entry(result.findings, None))
    except UnicodeEncodeError as exc:
        return _Fixed(None, f"{describe_encode_error(exc)}: file left as it was",
                      result.findings)
    try:
        compile(result.source, work.name, "exec", ast.PyCF_ONLY_AST, dont_inherit=True)
    except (SyntaxError, ValueError) as exc:
        return _Fixed(None, f"internal error, file left as it was; please report: the fixed "
                            f"code does not parse ({exc})", result.findings)
    return _Fixed(Entry(result.findings, result.source))


def compiles(text: str, name: str) -> bool:
    """The syntax check of a file the pre-filter skips: whether Python compiles it. Compiling
    runs nothing. Bytecode, not ``ast.parse``: a third of the cost, as no Python object is
    built for each node of the tree."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # `is` with a literal, a bad escape: not ours to report
        try:
            compile(text, name, "exec", dont_inherit=True)
        except (SyntaxError, ValueError):
            return False
    return True


def _prepare(
    job: Job, project: Project, cache: ResultCache | None, prefilter: bool
) -> Outcome | _Pending:
    """Everything the parent does before fixing: read, resolve, ask the cache."""
    candidate = job.candidate
    name = candidate.name
    stdin = candidate.path is None
    try:
        data = job.data if candidate.path is None else read_bytes(candidate.path)
    except OSError as exc:
        return Outcome(name, "error", f"cannot read: {describe_os_error(exc)}")
    assert data is not None
    echo = data if stdin and job.write else None  # a pipe never loses the text
    # Decoded before anything else looks at it: a file Python cannot read is said to be so,
    # whether or not it looks like a revision (in UTF-16, even `revision =` does not show).
    try:
        decoded = decode(data)
    except NotDecodable as exc:
        return Outcome(name, "error", str(exc), output=echo)
    if candidate.path is not None and not looks_like_revision(decoded.utf8 or data):
        return Outcome(name, "skipped")
    try:
        resolved = project.resolve(candidate.path)
    except SettingsError as exc:
        return Outcome(name, "error", str(exc), output=echo, in_settings=True)
    work = _Work(name, data, resolved.options, prefilter, job.fix)
    key = cache.key(data, resolved.options) if cache is not None else None
    pending = _Pending(job, work, resolved.status_unknown, key)
    if cache is not None and key is not None:
        entry = cache.get(key)
        if entry is not None and (entry.complete or not job.fix):
            return _finish(pending, _Fixed(entry), None)
    return pending


def _finish(pending: _Pending, fixed: _Fixed, cache: ResultCache | None) -> Outcome:
    """The outcome of a fixed file: cached, diffed, written, echoed."""
    job, work = pending.job, pending.work
    name, data = work.name, work.data
    stdin = job.candidate.path is None
    echo = data if stdin and job.write else None
    more: dict[str, Any] = {"status_unknown": pending.status_unknown}
    if fixed.entry is None:
        return Outcome(name, "error", fixed.error, findings=fixed.findings, output=echo, **more)
    entry = fixed.entry
    if cache is not None and pending.key is not None:
        cache.put(pending.key, entry)
    more["findings"] = entry.findings
    if not entry.complete:
        return Outcome(name, "checked", output=echo, **more)
    if entry.source is None:
        return Outcome(name, "unchanged", output=echo, **more)
    decoded = decode(data)
    result = encode(entry.source, decoded.encoding)  # fix_file has seen that it encodes
    diff = unified_diff(name, decoded.text, entry.source) if job.diff else None
    if job.write and job.candidate.path is not None:
        try:
            write_atomic(job.candidate.path, result)
        except OSError as exc:
            return Outcome(name, "error", f"cannot write: {describe_os_error(exc)}",
                           output=echo, **more)
    output = result if stdin and job.write else None
    return Outcome(name, "changed", diff=diff, output=output, **more)


def process(
    job: Job, project: Project, cache: ResultCache | None = None, prefilter: bool = True
) -> Outcome:
    """One job, in this process."""
    prepared = _prepare(job, project, cache, prefilter)
    if isinstance(prepared, Outcome):
        return prepared
    return _finish(prepared, fix_file(prepared.work), cache)


def run(
    jobs: Sequence[Job],
    spec: ProjectSpec,
    processes: int = 1,
    *,
    cache: ResultCache | None = None,
    prefilter: bool = True,
) -> Iterator[Outcome]:
    """Each job's outcome, in the order of ``jobs``. ``processes`` > 1 fixes the files the
    cache cannot answer for in a process pool; 0 means one process per CPU. Raises
    ``SettingsError`` at once for bad command-line settings, before any file is read.
    ``prefilter=False`` parses every file (the corpus test proves both give the same)."""
    project = spec.build()
    project.expect(job.candidate.path for job in jobs if job.candidate.path is not None)
    if processes == 0:
        processes = os.cpu_count() or 1
    if processes <= 1 or len(jobs) <= 1:
        return (process(job, project, cache, prefilter) for job in jobs)
    return _in_pool(jobs, project, processes, cache, prefilter)


def _in_pool(
    jobs: Sequence[Job],
    project: Project,
    processes: int,
    cache: ResultCache | None,
    prefilter: bool,
) -> Iterator[Outcome]:
    prepared = [_prepare(job, project, cache, prefilter) for job in jobs]
    pending = [p for p in prepared if isinstance(p, _Pending)]
    processes = min(processes, len(pending))
    if processes <= 1:
        for item in prepared:
            yield item if isinstance(item, Outcome) else _finish(item, fix_file(item.work), cache)
        return
    # Imported here: a run the cache answers starts no pool (multiprocessing costs 7 ms).
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(processes) as pool:
        # Small chunks: most files are answered by the pre-filter in microseconds, while the
        # few that hold findings take a parse each.
        chunk = max(1, len(pending) // (processes * 16))
        fixed = pool.map(fix_file, [p.work for p in pending], chunksize=chunk)
        for item in prepared:
            yield item if isinstance(item, Outcome) else _finish(item, next(fixed), cache)
