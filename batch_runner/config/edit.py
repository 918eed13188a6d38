"""The only writers of the config file: ``add``, ``remove``, ``enable``/``disable``, ``init``.

Each edit changes one thing in the parsed document and keeps everything else: the other jobs,
unknown keys and the order of keys (Python dicts keep the file's order). The same change is
made in the file's text (``textedit``), so only the edited job's text changes and the file
keeps its style: a one-line job stays one line, and its line endings and byte order mark
stay. The new document is validated in full before anything is written, and is written
atomically (temp file, fsync, rename, fsync of the directory) with the original file's mode,
so a refused or interrupted edit leaves the file exactly as it was.
"""

from __future__ import annotations

import contextlib
import difflib
import fcntl
import json
import os
import sys
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from batch_runner.config import textedit
from batch_runner.config.httpchecks import http_problems
from batch_runner.config.jsonpos import format_path, scan
from batch_runner.config.loader import Source, read_source
from batch_runner.errors import ConfigError, NotFound, OperationFailed, UsageError
from batch_runner.files import write_atomic

DEFAULT_CONFIG_RESOURCE = "default_config.json"
_BOM = b"\xef\xbb\xbf"  # UTF-8's byte order mark


def default_config_bytes() -> bytes:
    """The config ``init`` writes; ``config/batch_config.json`` ships the same bytes."""
    return resources.files("batch_runner.config").joinpath(DEFAULT_CONFIG_RESOURCE).read_bytes()


def init_config(config_path: Path | str) -> None:
    """Write the default config at ``config_path``; UsageError if a file is already there."""
    config_path = Path(config_path)
    try:
        config_path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(config_path, default_config_bytes(), exclusive=True)
    except FileExistsError:
        raise UsageError(
            f"the config file {config_path} already exists; init never "
            "overwrites a config (remove the file first to start over)"
        ) from None
    except OSError as exc:
        raise OperationFailed(f"cannot write {config_path}: {exc.strerror or exc}") from None


def add_job(config_path: Path | str, root: Path | str, job: dict[str, Any]) -> None:
    """Append ``job`` to the file; ConfigError if the name is taken or the job is invalid."""
    with _editing(config_path):
        source = _current(config_path)
        edited = _appended(source, dict(job))
        jobs = source.document.setdefault("jobs", [])
        if not isinstance(jobs, list):
            raise ConfigError(
                f'{config_path}: "jobs" is not a list; fix the file before adding jobs'
            )
        name = job.get("name")
        if any(isinstance(other, dict) and other.get("name") == name for other in jobs):
            raise ConfigError(
                f"{config_path}: a job named {name!r} already exists; "
                "choose another name or remove that job first"
            )
        jobs.append(dict(job))
        _write_validated(source, root, f"adding job {name!r}", edited)


def _appended(source: Source, job: dict[str, Any]) -> str | None:
    """The text with ``job`` after the last job, in the file's style; None where it has none."""
    text: str | None = source.text
    if "jobs" not in source.document:
        # An empty list first, so that the job then goes in as it would into "jobs": [].
        text = textedit.add_key(source.text, scan(source.text), (), "jobs", [])
    return None if text is None else textedit.append_element(text, scan(text), ("jobs",), job)


def remove_job(config_path: Path | str, root: Path | str, name: str) -> None:
    """Remove the job called ``name``; NotFound if there is none."""
    with _editing(config_path):
        source = _current(config_path)
        index = _index_of(source, name)
        edited = textedit.remove_element(source.text, scan(source.text), ("jobs",), index)
        del source.document["jobs"][index]
        _write_validated(source, root, f"removing job {name!r}", edited)


def set_enabled(config_path: Path | str, root: Path | str, name: str, enabled: bool) -> None:
    """Set the ``enabled`` key of the job called ``name``; NotFound if there is none."""
    with _editing(config_path):
        source = _current(config_path)
        index = _index_of(source, name)
        job, at = source.document["jobs"][index], scan(source.text)
        if "enabled" in job:
            edited = textedit.replace_value(source.text, at, ("jobs", index, "enabled"), enabled)
        else:
            edited = textedit.add_key(source.text, at, ("jobs", index), "enabled", enabled)
        job["enabled"] = enabled
        action = f"{'enabling' if enabled else 'disabling'} job {name!r}"
        _write_validated(source, root, action, edited)


@contextlib.contextmanager
def _editing(config_path: Path | str) -> Iterator[None]:
    """Hold an exclusive flock on the config's directory for one read-modify-write.

    Without it two edits at once both read the old file and the second rename drops the
    first one's change. The file itself cannot carry the lock (each edit renames a new inode
    over it), and a lock file would litter the user's config directory; the directory can.
    The kernel drops the lock when its holder dies, even by SIGKILL.
    """
    directory = os.path.dirname(os.path.realpath(config_path)) or "."
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        yield  # nowhere to lock: the compare before the rename still refuses a clash
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:
            pass  # NFS emulates flock with write locks, which a directory cannot take: as above
        yield
    finally:
        os.close(fd)


def _current(config_path: Path | str) -> Source:
    source = read_source(config_path)
    # json.loads kept only the last of any repeated key; writing the document back would
    # silently drop the others, so the user decides first.
    repeated = scan(source.text).duplicates
    if repeated:
        where = ", ".join(format_path(path) for path, _ in repeated)
        raise ConfigError(
            f"{config_path}: keys appear twice ({where}); "
            "remove the duplicates before editing with batch_runner"
        )
    return source


def _index_of(source: Source, name: str) -> int:
    jobs = source.document.get("jobs")
    names = [
        job.get("name") if isinstance(job, dict) else None
        for job in (jobs if isinstance(jobs, list) else [])
    ]
    if name in names:
        return names.index(name)
    close = difflib.get_close_matches(name, [n for n in names if isinstance(n, str)], n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise NotFound(f"no job named {name!r} in {source.path}{hint}")


def _write_validated(source: Source, root: Path | str, action: str, edited: str | None) -> None:
    """Validate the edited document and write it: as ``edited`` (the old text with only the
    edited job's text changed) when that parses to the same document, else in full."""
    from batch_runner.config.validation import validate_document

    path = source.path
    try:
        # No positions: line numbers of a file that was never written would only confuse.
        # No environment: a variable that the editing shell lacks (the scheduler's unit sets
        # it) is no reason to refuse an edit; it is pointed out below instead.
        validate_document(str(path), source.document, os.path.abspath(root), check_variables=False)
    except ConfigError as exc:
        count = len(exc.problems)
        raise ConfigError(
            f"{path}: {action} refused; the config would have {count} "
            f"problem{'s' if count != 1 else ''}",
            problems=exc.problems,
        ) from None
    # The byte order mark the loader dropped before parsing goes back in front.
    bom = _BOM if source.data.startswith(_BOM) else b""
    _replace(source, bom + _styled(source, edited).encode())
    for problem in http_problems(source.document, os.environ):
        # Only the environment is missing something: the scheduler or run-job run where it
        # is not will refuse the config, so say so now.
        print(
            f"warning: {problem.line(str(path), None)}; the scheduler and run-job refuse "
            "the config where this holds",
            file=sys.stderr,
        )


def _styled(source: Source, edited: str | None) -> str:
    if edited is not None:
        try:
            # As text, so that the order of keys counts too (dicts compare equal without it).
            if json.dumps(json.loads(edited)) == json.dumps(source.document):
                return edited
        except ValueError:
            pass  # cannot happen for text built from valid JSON; the full rewrite is the net
    # json.dumps puts a newline only between tokens (never in a string), so each is a line end.
    newline = textedit.line_ending(source.text)
    return (
        json.dumps(source.document, indent=2, ensure_ascii=False).replace("\n", newline) + newline
    )


def _replace(source: Source, data: bytes) -> None:
    # Write through a symlink to the file it points at, rather than replacing the link.
    target = Path(os.path.realpath(source.path))
    try:
        if target.read_bytes() != source.data:
            raise OperationFailed(
                f"{source.path} changed while it was being edited; nothing was written, try again"
            )
        write_atomic(target, data, like=target.stat())
    except OSError as exc:
        raise OperationFailed(f"cannot write {source.path}: {exc.strerror or exc}") from None
