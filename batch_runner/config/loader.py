"""Loading the config file: cheaply from the snapshot when the file is unchanged, else in full.

Validation needs pydantic, which costs more to import than most commands take to run. A
successful validation therefore leaves a snapshot of the normalized config in the log dir,
keyed by the file's sha256 (and the path, root and versions that shaped it); as long as the
file is byte-identical, ``load_config`` rebuilds the config from the snapshot and this module
never imports pydantic. Anything unexpected about the snapshot just means validating again.
"""

from __future__ import annotations

import json
import os
import stat

try:  # the built-in implementation: hashlib would load OpenSSL, a few ms on every run-job
    from _sha256 import sha256  # type: ignore[import-not-found]  # CPython's, untyped
except ImportError:  # pragma: no cover - a Python built without it
    from hashlib import sha256

from batch_runner.config.spec import SNAPSHOT_FORMAT, ConfigSpec
from batch_runner.config.trust import check_config_trust
from batch_runner.errors import ConfigError
from batch_runner.logs import get_logger
from batch_runner.paths import DEFAULT_LOG_DIR, resolve_under_root
from batch_runner.state.layout import LogLayout
from batch_runner.state.ownership import check_log_dir
from batch_runner.valuetype import Record
from batch_runner.version import __version__

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from batch_runner.paths import StrPath

log = get_logger("batch_runner.config")

_EXAMPLE = '{"jobs": [...]}'


class Source(Record):
    """A config file as read: its path, bytes, text and the parsed top-level object."""

    path: str
    data: bytes
    text: str
    document: dict[str, Any]


def load_config(config_path: StrPath, root: StrPath) -> ConfigSpec:
    """The validated config, from the snapshot when the file has not changed since."""
    source = read_source(config_path)
    root = os.path.abspath(root)
    # Before the snapshot is trusted: another account that can write the log dir could have
    # put its own commands in it.
    check_log_dir(log_dir_of(source.document.get("settings"), root))
    config = _cached(source, root)
    if config is None:
        config = _validate_and_cache(source, root)
    return config


def validate_file(config_path: StrPath, root: StrPath) -> ConfigSpec:
    """The config after full validation, whatever the snapshot says; ConfigError if invalid."""
    source = read_source(config_path)
    root = os.path.abspath(root)
    check_log_dir(log_dir_of(source.document.get("settings"), root))
    return _validate_and_cache(source, root)


def read_source(config_path: StrPath) -> Source:
    """Read, decode and parse the file; ConfigError with one sentence if any step fails."""
    config_path = os.fspath(config_path)
    data = read_bytes(config_path)
    check_config_trust(config_path)
    text = _decode(config_path, data)
    if not text.strip():
        raise ConfigError(
            f"{config_path}: the config file is empty; expected a JSON object such as {_EXAMPLE}"
        )
    document = _parse(config_path, text)
    if not isinstance(document, dict):
        raise ConfigError(
            f"{config_path}: the top level is {_kind_of(document)}; "
            f"expected a JSON object such as {_EXAMPLE}"
        )
    return Source(config_path, data, text, document)


def read_bytes(path: str) -> bytes:
    """The config file's bytes; ConfigError with one sentence if it cannot be read as one."""
    try:
        # Non-blocking: a FIFO (or a device) named as the config would hang every command.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with open(fd, "rb") as file:
            if not stat.S_ISREG(os.fstat(fd).st_mode) and not os.path.isdir(path):
                raise ConfigError(f"the config file {path} is not a regular file")
            return file.read()
    except (FileNotFoundError, NotADirectoryError):
        raise ConfigError(
            f"the config file {path} does not exist; {_where_the_project_is(path)}"
        ) from None
    except IsADirectoryError:
        raise ConfigError(f"the config file {path} is a directory, not a file") from None
    except OSError as exc:
        raise ConfigError(f"cannot read the config file {path}: {exc.strerror or exc}") from None


def _where_the_project_is(path: str) -> str:
    """Run from inside a project (its config/ or logs/ folder), point at its root; a new
    config made here would only split the jobs and the logs in two."""
    relative = os.path.join(os.path.basename(os.path.dirname(path)), os.path.basename(path))
    folder = os.path.dirname(os.path.dirname(os.path.abspath(path)))
    for _ in range(3):
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
        if os.path.isfile(os.path.join(folder, relative)):
            return (
                f"the project above is {folder}: run from there, or give --root {folder} "
                "(`batch_runner init` would start a second one here)"
            )
    return (
        "run `batch_runner init` to create it here, or point at an existing project with "
        "--root DIR, -c FILE or $BATCH_RUNNER_ROOT"
    )


def _decode(path: str, data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError(
            f"{path}: line {line}, column {column}: the config file is not "
            "UTF-8 text; save it as UTF-8"
        ) from None
    # A byte order mark is tolerated: some Windows editors add one to every file they save.
    return text.removeprefix("\ufeff")


class _NotJson(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    raise _NotJson(name)


def _parse(path: str, text: str) -> Any:
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        comma = _trailing_comma(text, exc.pos)
        if comma is not None:
            line = text.count("\n", 0, comma) + 1
            column = comma - (text.rfind("\n", 0, comma) + 1) + 1
            closer = text[exc.pos]
            raise ConfigError(
                f"{path}: line {line}, column {column}: the config file is not valid JSON: "
                f"a trailing comma before {closer!r}; JSON allows no comma after the last "
                "item, so remove it"
            ) from None
        raise ConfigError(
            f"{path}: line {exc.lineno}, column {exc.colno}: the config file is "
            f"not valid JSON: {exc.msg}"
        ) from None
    except _NotJson as exc:  # json.loads accepts NaN and Infinity; JSON does not
        raise ConfigError(f"{path}: {exc} is not valid JSON; numbers must be finite") from None
    except RecursionError:
        raise ConfigError(f"{path}: the config file is nested too deeply") from None
    except ValueError as exc:  # e.g. an integer longer than Python converts (4300 digits)
        raise ConfigError(f"{path}: the config file cannot be read as JSON: {exc}") from None


def _trailing_comma(text: str, error_at: int) -> int | None:
    """Where the comma is, when json stopped at a "}" or "]" that follows one."""
    if error_at >= len(text) or text[error_at] not in "}]":
        return None
    before = text[:error_at].rstrip()
    return len(before) - 1 if before.endswith(",") else None


def _kind_of(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    return "a number"


# --- the snapshot --------------------------------------------------------------------------


def snapshot_identity(config_path: str, root: str) -> dict[str, Any]:
    """What a snapshot must match to be of this config file and root, by this version."""
    return {
        "format": SNAPSHOT_FORMAT,
        "version": __version__,
        "config_path": os.path.abspath(config_path),
        "root": root,
    }


def _snapshot_key(source: Source, root: str) -> dict[str, Any]:
    """What the normalized config depends on, besides the validation code itself."""
    return {**snapshot_identity(source.path, root), "sha256": sha256(source.data).hexdigest()}


def log_dir_of(settings: Any, root: str) -> str:
    """The log dir the raw ``settings`` name (validation checks the value; this only finds it)."""
    raw = settings.get("log_dir") if isinstance(settings, dict) else None
    return resolve_under_root(root, raw if isinstance(raw, str) and raw else DEFAULT_LOG_DIR)


def _cached(source: Source, root: str) -> ConfigSpec | None:
    log_dir = log_dir_of(source.document.get("settings"), root)
    found = snapshot_config(log_dir, source.path, root, _snapshot_key(source, root))
    return found[0] if found else None


def snapshot_config(
    log_dir: str, config_path: str, root: str, key: dict[str, Any]
) -> tuple[ConfigSpec, float] | None:
    """The config in ``log_dir``'s snapshot and when it was written, if the snapshot matches
    ``key``; None for none, another, or a damaged one (then the config is validated again)."""
    try:
        fd = os.open(LogLayout(log_dir).config_snapshot, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with open(fd, "rb") as file:
            written = os.fstat(fd).st_mtime
            snapshot = json.loads(file.read())
    except (OSError, ValueError):
        return None
    if not isinstance(snapshot, dict) or any(snapshot.get(k) != v for k, v in key.items()):
        return None
    try:
        return ConfigSpec.from_normalized(config_path, root, snapshot["config"]), written
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def _validate_and_cache(source: Source, root: str) -> ConfigSpec:
    from batch_runner.config.validation import validate_document

    normalized = validate_document(source.path, source.document, root, source.text)
    _store_snapshot(source, root, normalized)
    return ConfigSpec.from_normalized(source.path, root, normalized)


def _store_snapshot(source: Source, root: str, normalized: dict[str, Any]) -> None:
    from batch_runner.files import make_private_dirs, write_atomic

    path = LogLayout(log_dir_of(normalized["settings"], root)).config_snapshot
    payload = {**_snapshot_key(source, root), "config": normalized}
    try:
        make_private_dirs(os.path.dirname(path))  # the log dir too: 0700, whatever the umask
        # Owner only: the snapshot copies the config, literal header values included.
        # Compact: an indent would make json use its pure-Python encoder, seconds for 10,000 jobs.
        write_atomic(path, json.dumps(payload, separators=(",", ":")).encode(), mode=0o600)
    except OSError as exc:
        # Best effort: without a snapshot the next load validates again, which is only slower.
        log.debug("cannot write the config snapshot %s: %s", path, exc)
