"""Where things are: the root, the config file, and the files under the log dir (SPEC 2)."""

from __future__ import annotations

import os

# Paths are plain strings here and on every path run-job and queue add take: pathlib imports
# urllib.parse and ipaddress, about 6 ms of a start-up budget of 50.
DEFAULT_CONFIG = os.path.join("config", "batch_config.json")
DEFAULT_LOG_DIR = "logs"

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TypeAlias

    StrPath: TypeAlias = "str | os.PathLike[str]"


def resolve_root(
    cli_root: str | None,
    environ: dict[str, str] | os._Environ[str],
    cli_config: str | None = None,
) -> str:
    """``--root``, else ``$BATCH_RUNNER_ROOT``, else the project of a named config, else the
    current directory; always absolute.

    A named config (``-c`` or ``$BATCH_RUNNER_CONFIG``) brings its project with it, so
    ``-c /srv/site/config/batch_config.json`` run from anywhere reaches the logs, the state
    and the executor lock of the scheduler of that config, not a second world in the current
    directory: the root is the folder holding the config's ``config/`` folder, or the config's
    own folder when that is not named ``config``.
    """
    chosen = cli_root or environ.get("BATCH_RUNNER_ROOT")
    if chosen:
        return os.path.abspath(os.path.expanduser(chosen))
    config = cli_config or environ.get("BATCH_RUNNER_CONFIG")
    if config:
        folder = os.path.dirname(os.path.abspath(os.path.expanduser(config)))
        return os.path.dirname(folder) if os.path.basename(folder) == "config" else folder
    return os.getcwd()


def resolve_config_path(
    cli_config: str | None, root: StrPath, environ: dict[str, str] | os._Environ[str]
) -> str:
    """``--config``, else ``$BATCH_RUNNER_CONFIG``, else ``<root>/config/batch_config.json``."""
    chosen = cli_config or environ.get("BATCH_RUNNER_CONFIG")
    if chosen:
        return os.path.abspath(os.path.expanduser(chosen))
    return os.path.join(root, DEFAULT_CONFIG)


def resolve_under_root(root: StrPath, value: str) -> str:
    """A path from the config: absolute as given, relative ones against the root."""
    # join keeps an absolute second part as it is.
    return _tidy(os.path.join(root, os.path.expanduser(value)))


def _tidy(path: str) -> str:
    """``path`` without "." parts, repeated or trailing slashes, as pathlib writes it.

    ".." stays: which directory it means depends on symlinks, so the kernel decides.
    """
    parts = [part for part in path.split("/") if part not in ("", ".")]
    return ("/" if path.startswith("/") else "") + "/".join(parts) or "."
