"""One file through the codemod: read, check, fix, maybe write; and many files, maybe in parallel.

A file is read, resolved to its ``Options`` and looked up in the result cache by the parent
process; only files the cache has not seen are fixed, in worker processes when ``jobs`` > 1.
Before parsing, the pre-filter (codemod/prefilter.py) tells from a file's bytes whether it can
hold a finding at all: one that cannot is only checked to compile. Writes and diffs happen in
the parent.

A file whose autocommit work is split off (``<rev>_pre`` / ``<rev>_post``) has revision files
created beside it: the parent looks at the folder first (another revision already following
it makes the file stay one revision; a file in the way of a part is an error, and nothing is
written), then writes the new files, then the file itself, which names them: an interrupted
run loses nothing, and a rerun finishes it (a part already there, byte for byte, is kept).

Nothing here raises for a bad file: what went wrong is in the ``Outcome``, and the file is
left byte for byte as it was. Outcomes come back in the order the files were given, whatever
``jobs`` is, so output does not depend on scheduling.
"""

from __future__ import annotations

import ast
import dataclasses
import os
import traceback
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from migrafix.codemod.api import FileFinding, FileResult, Naming, NewRevision, Options
from migrafix.codemod.cache import Entry, ResultCache
from migrafix.codemod.files import (
    Candidate,
    NotDecodable,
    check_writable,
    create_atomic,
    decode,
    describe_encode_error,
    describe_os_error,
    describe_parse_error,
    encode,
    read_bytes,
    scan_revision,
    write_atomic,
)
from migrafix.codemod.prefilter import may_have_findings
from migrafix.codemod.project import Project
from migrafix.codemod.report import unified_diff
from migrafix.codemod.split_parts import Folder, not_split_note, part_of, part_path
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
    # The revision id the file's bytes assign (None: none), read for every file: `check`
    # looks across a folder's files with it (codemod/split_parts.py, ``orphaned_parts``).
    revision: str | None = None
    # The revision files created beside it (or that would be: --check, --diff): (name, id).
    created: tuple[tuple[str, str], ...] = ()

    @property
    def split_from(self) -> str | None:
        """The main revision of a split-off part (``<rev>_pre``, ``<rev>_post``), else None."""
        split = part_of(self.revision)
        return split[0] if split else None


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
    revision: str | None


class _Folders:
    """The folders of files with parts to split off, each read once per run."""

    def __init__(self) -> None:
        self._folders: dict[Path, Folder] = {}

    def __getitem__(self, folder: Path) -> Folder:
        if folder not in self._folders:
            self._folders[folder] = Folder(folder)
        return self._folders[folder]


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

    from migrafix.codemod.fixer import process_source

    try:
        result = process_source(decoded.text, work.options, write=work.fix)
    except cst.ParserSyntaxError as exc:
        return _Fixed(None, describe_parse_error(decoded.text, work.name, exc))
    except Exception as exc:
        details = "".join(traceback.format_exception(exc)).rstrip()
        return _Fixed(None, f"internal error, file left as it was; please report:\n{details}")
    if not work.fix:
        return _Fixed(_checked(result))
    return _fixed(result, work, decoded.encoding)


def _checked(result: FileResult) -> Entry:
    """The findings alone (and the ids of the revisions a fix would create)."""
    unsplit = _checked(result.unsplit) if result.unsplit is not None else None
    return Entry(result.findings, None, complete=False, new_revisions=result.new_revisions,
                 unsplit=unsplit)


def _fixed(result: FileResult, work: _Work, encoding: str) -> _Fixed:
    """The entry of a fixed file, once its code and that of each file to create is known to
    encode in the file's encoding and to parse."""
    try:
        source = None if encode(result.source, encoding) == work.data else result.source
        for new in result.new_revisions:
            encode(new.source or "", encoding)
    except UnicodeEncodeError as exc:
        return _Fixed(None, f"{describe_encode_error(exc)}: file left as it was",
                      result.findings)
    for text in [source, *(r.source for r in result.new_revisions)]:
        if text is None:
            continue
        try:
            compile(text, work.name, "exec", ast.PyCF_ONLY_AST, dont_inherit=True)
        except (SyntaxError, ValueError) as exc:
            return _Fixed(None, f"internal error, file left as it was; please report: the "
                                f"fixed code does not parse ({exc})", result.findings)
    unsplit = None
    if result.unsplit is not None:
        whole = _fixed(result.unsplit, work, encoding)
        if whole.entry is None:
            return whole
        unsplit = whole.entry
    return _Fixed(Entry(result.findings, source, new_revisions=result.new_revisions,
                        unsplit=unsplit))


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
    job: Job, project: Project, cache: ResultCache | None, prefilter: bool, folders: _Folders
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
    looks_like, revision = scan_revision(decoded.utf8 or data)
    if candidate.path is not None and not looks_like:
        return Outcome(name, "skipped", revision=revision)
    try:
        resolved = project.resolve(candidate.path)
    except SettingsError as exc:
        return Outcome(name, "error", str(exc), output=echo, in_settings=True,
                       revision=revision)
    options = resolved.options
    if stdin:
        options = dataclasses.replace(options, cannot_split=_FROM_STDIN)
    work = _Work(name, data, options, prefilter, job.fix)
    key = cache.key(data, options) if cache is not None else None
    pending = _Pending(job, work, resolved.status_unknown, key, revision)
    if cache is not None and key is not None:
        entry = cache.get(key)
        if entry is not None and (entry.complete or not job.fix):
            return _finish(pending, _Fixed(entry), None, folders)
    return pending


_FROM_STDIN = "it is read from standard input, with no folder to write them to"


def _finish(
    pending: _Pending, fixed: _Fixed, cache: ResultCache | None, folders: _Folders
) -> Outcome:
    """The outcome of a fixed file: cached, split or not, diffed, written, echoed."""
    job, work = pending.job, pending.work
    name, data = work.name, work.data
    path = job.candidate.path
    stdin = path is None
    echo = data if stdin and job.write else None
    more: dict[str, Any] = {"status_unknown": pending.status_unknown,
                            "revision": pending.revision}
    if fixed.entry is None:
        return Outcome(name, "error", fixed.error, findings=fixed.findings, output=echo, **more)
    entry = fixed.entry
    if cache is not None and pending.key is not None:
        cache.put(pending.key, entry)
    decoded = decode(data)
    parts: list[tuple[NewRevision, Path, bytes | None]] = []
    if entry.new_revisions and path is not None:
        parts = [(new, _part_path(path, new), None if new.source is None
                  else encode(new.source, decoded.encoding)) for new in entry.new_revisions]
        revision = entry.new_revisions[0].revision.rpartition("_")[0]
        obstacle = folders[path.parent].obstacle(
            path, revision, [(new.part, part_data) for new, _, part_data in parts])
        if obstacle is not None and obstacle[0] == "collision":
            return Outcome(name, "error", f"cannot split off its autocommit work: {obstacle[1]}",
                           findings=entry.findings, **more)
        if obstacle is not None:  # another revision follows it: it stays one revision
            assert entry.unsplit is not None
            note = not_split_note(revision, [new.part for new in entry.new_revisions],
                                  obstacle[1])
            entry = dataclasses.replace(entry.unsplit, findings=tuple(sorted(
                (*entry.unsplit.findings, note), key=lambda f: (f.line, f.column, f.rule))))
            parts = []
    more["findings"] = entry.findings
    if not entry.complete:
        return Outcome(name, "checked", output=echo, **more)
    if entry.source is None:
        return Outcome(name, "unchanged", output=echo, **more)
    result = encode(entry.source, decoded.encoding)  # fix_file has seen that it encodes
    created = tuple((str(target), new.revision) for new, target, _ in parts)
    diff = None
    if job.diff:
        diff = unified_diff(name, decoded.text, entry.source) + "".join(
            unified_diff(str(target), "", new.source or "", created=True)
            for new, target, _ in parts)
    if job.write and path is not None:
        try:
            if parts:
                check_writable(path)  # the file that names them must be writable first
            for _, target, part_data in parts:
                if not target.exists():  # one there is the same bytes: obstacle() saw to it
                    assert part_data is not None
                    create_atomic(target, part_data, like=path)
            write_atomic(path, result)
        except OSError as exc:
            return Outcome(name, "error", f"cannot write: {describe_os_error(exc)}",
                           output=echo, **more)
    output = result if stdin and job.write else None
    return Outcome(name, "changed", diff=diff, output=output, created=created, **more)


def _part_path(path: Path, new: NewRevision) -> Path:
    return part_path(path, new.revision.rpartition("_")[0], new.part)


def process(
    job: Job,
    project: Project,
    cache: ResultCache | None = None,
    prefilter: bool = True,
    folders: _Folders | None = None,
) -> Outcome:
    """One job, in this process."""
    folders = folders or _Folders()
    prepared = _prepare(job, project, cache, prefilter, folders)
    if isinstance(prepared, Outcome):
        return prepared
    return _finish(prepared, fix_file(prepared.work), cache, folders)


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
    folders = _Folders()
    if processes <= 1 or len(jobs) <= 1:
        return (process(job, project, cache, prefilter, folders) for job in jobs)
    return _in_pool(jobs, project, processes, cache, prefilter, folders)


def _in_pool(
    jobs: Sequence[Job],
    project: Project,
    processes: int,
    cache: ResultCache | None,
    prefilter: bool,
    folders: _Folders,
) -> Iterator[Outcome]:
    prepared = [_prepare(job, project, cache, prefilter, folders) for job in jobs]
    pending = [p for p in prepared if isinstance(p, _Pending)]
    processes = min(processes, len(pending))
    if processes <= 1:
        for item in prepared:
            yield item if isinstance(item, Outcome) else _finish(item, fix_file(item.work), cache,
                                                                 folders)
        return
    # Imported here: a run the cache answers starts no pool (multiprocessing costs 7 ms).
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(processes) as pool:
        # Small chunks: most files are answered by the pre-filter in microseconds, while the
        # few that hold findings take a parse each.
        chunk = max(1, len(pending) // (processes * 16))
        fixed = pool.map(fix_file, [p.work for p in pending], chunksize=chunk)
        for item in prepared:
            yield item if isinstance(item, Outcome) else _finish(item, next(fixed), cache,
                                                                 folders)
