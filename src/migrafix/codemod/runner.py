"""One file through the codemod: read, check, fix, maybe write; and many files, maybe in parallel.

``process`` never raises for a bad file: what went wrong is in the ``Outcome``, and the file is
left byte for byte as it was. Outcomes come back in the order the files were given, whatever
``jobs`` is, so output does not depend on scheduling.
"""

from __future__ import annotations

import ast
import os
import traceback
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import libcst as cst

from migrafix.codemod.api import FileFinding, Naming
from migrafix.codemod.files import (
    Candidate,
    decode,
    describe_decode_error,
    describe_os_error,
    describe_parse_error,
    encode,
    looks_like_revision,
    read_bytes,
    write_atomic,
)
from migrafix.codemod.fixer import fix_source
from migrafix.codemod.project import Project
from migrafix.codemod.report import unified_diff
from migrafix.settings import SettingsError

__all__ = ["Job", "Outcome", "ProjectSpec", "process", "run"]

Status = Literal["skipped", "unchanged", "changed", "error"]


@dataclass(frozen=True)
class ProjectSpec:
    """What a ``Project`` is built from (picklable, for worker processes)."""

    command_line: Mapping[str, Any]
    dialect: str | None
    naming: Naming

    def build(self) -> Project:
        return Project(self.command_line, self.dialect, self.naming)


@dataclass(frozen=True)
class Job:
    candidate: Candidate
    write: bool  # write a changed file (for standard input: print the result)
    diff: bool  # make a unified diff of the change
    data: bytes | None = None  # standard input's bytes, read by the parent process


@dataclass(frozen=True)
class Outcome:
    name: str
    status: Status
    error: str | None = None
    findings: tuple[FileFinding, ...] = ()
    diff: str | None = None
    output: bytes | None = None  # for standard input: what to print on standard output
    warnings: tuple[str, ...] = ()


def process(job: Job, project: Project) -> Outcome:
    candidate = job.candidate
    name = candidate.name
    stdin = candidate.path is None
    try:
        data = job.data if candidate.path is None else read_bytes(candidate.path)
    except OSError as exc:
        return Outcome(name, "error", f"cannot read: {describe_os_error(exc)}")
    assert data is not None

    def failed(reason: str, **more: Any) -> Outcome:
        # Standard input is echoed unchanged, so a pipe never loses the text.
        echo = data if stdin and job.write else None
        return Outcome(name, "error", reason, output=echo, **more)

    if candidate.path is not None and not looks_like_revision(data):
        return Outcome(name, "skipped")
    try:
        decoded = decode(data)
    except UnicodeDecodeError as exc:
        return failed(describe_decode_error(exc))
    try:
        resolved = project.resolve(candidate.path)
    except SettingsError as exc:
        return failed(str(exc))
    try:
        result = fix_source(decoded.text, resolved.options)
    except cst.ParserSyntaxError as exc:
        return failed(describe_parse_error(decoded.text, name, exc))
    except Exception as exc:
        details = "".join(traceback.format_exception(exc)).rstrip()
        return failed(f"internal error, file left as it was; please report:\n{details}")

    more: dict[str, Any] = {"findings": result.findings, "warnings": resolved.warnings}
    fixed = encode(result.source, decoded.bom)
    if fixed == data:
        return Outcome(name, "unchanged", output=data if stdin and job.write else None, **more)
    try:
        compile(result.source, name, "exec", ast.PyCF_ONLY_AST, dont_inherit=True)
    except (SyntaxError, ValueError) as exc:
        return failed(
            f"internal error, file left as it was; please report: the fixed code does not "
            f"parse ({exc})",
            **more,
        )
    diff = unified_diff(name, decoded.text, result.source) if job.diff else None
    if job.write and candidate.path is not None:
        try:
            write_atomic(candidate.path, fixed)
        except OSError as exc:
            return failed(f"cannot write: {describe_os_error(exc)}", **more)
    output = fixed if stdin and job.write else None
    return Outcome(name, "changed", diff=diff, output=output, **more)


_worker_project: Project | None = None


def _start_worker(spec: ProjectSpec) -> None:
    global _worker_project
    _worker_project = spec.build()


def _process_in_worker(job: Job) -> Outcome:
    assert _worker_project is not None
    return process(job, _worker_project)


def run(jobs: Sequence[Job], spec: ProjectSpec, processes: int = 1) -> Iterator[Outcome]:
    """Each job's outcome, in the order of ``jobs``. ``processes`` > 1 uses a process pool;
    0 means one process per CPU. Raises ``SettingsError`` at once for bad command-line
    settings, before any file is read."""
    project = spec.build()
    if processes == 0:
        processes = os.cpu_count() or 1
    processes = min(processes, len(jobs))
    if processes <= 1:
        return (process(job, project) for job in jobs)
    return _in_pool(jobs, spec, processes)


def _in_pool(jobs: Sequence[Job], spec: ProjectSpec, processes: int) -> Iterator[Outcome]:
    with ProcessPoolExecutor(processes, initializer=_start_worker, initargs=(spec,)) as pool:
        yield from pool.map(_process_in_worker, jobs, chunksize=max(1, len(jobs) // 64))
