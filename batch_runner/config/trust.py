"""Who may write the config: whoever can write it runs commands as the runner's user.

Like cron and jobber, a runner running as root refuses a config file, or a directory holding
it, that another account owns or that group or others can write (a ``ConfigError``, exit 78).
Any other user gets a warning on stderr, once per process and file.
"""

from __future__ import annotations

import os
import stat
import sys

from batch_runner.errors import ConfigError
from batch_runner.state.ownership import user_name, writers

_warned: set[str] = set()


class UntrustedConfig(ConfigError):
    """A config others can write, refused as root: no command works from any copy of it."""


def _writable_by_others(path: str) -> tuple[str, int] | None:
    """The first of ``path`` and its directory that group or others may write, with its mode."""
    for candidate, is_directory in ((path, False), (os.path.dirname(path) or ".", True)):
        try:
            info = os.stat(candidate)
        except OSError:
            continue
        mode = stat.S_IMODE(info.st_mode)
        if not mode & (stat.S_IWGRP | stat.S_IWOTH):
            continue
        # A sticky directory (like /tmp) does not let others replace a file they do not own.
        if is_directory and mode & stat.S_ISVTX:
            try:
                if os.stat(path).st_uid == os.geteuid():
                    continue
            except OSError:
                continue
        return candidate, mode
    return None


def _owned_by_another(path: str) -> tuple[str, int] | None:
    """The first of ``path`` and its directory owned by neither this user nor root: its
    owner can rewrite the config (cron refuses such a file in /etc/cron.d the same way)."""
    euid = os.geteuid()
    for candidate in (path, os.path.dirname(path) or "."):
        try:
            owner = os.stat(candidate).st_uid
        except OSError:
            continue
        if owner not in (euid, 0):
            return candidate, owner
    return None


def check_config_trust(path: str | os.PathLike[str]) -> None:
    """Refuse (root) or warn about (other users) a config that another account can write."""
    path = os.fspath(path)
    reason = _why_untrusted(path)
    if reason is None:
        return
    if os.geteuid() == 0:
        raise UntrustedConfig(f"refusing to run as root: {reason}")
    if reason not in _warned:
        _warned.add(reason)
        print(f"batch_runner: warning: {reason}", file=sys.stderr)


def _why_untrusted(path: str) -> str | None:
    owned = _owned_by_another(path)
    if owned is not None:
        where, owner = owned
        what = "the config file" if where == path else "the directory of the config file"
        return (
            f"{what} {where} belongs to {user_name(owner)}, and whoever owns the config runs "
            f"commands as this user; fix with `chown {user_name(os.geteuid())} {where}`"
        )
    found = _writable_by_others(path)
    if found is None:
        return None
    where, mode = found
    what = "the config file" if where == path else "the directory of the config file"
    return (
        f"{what} {where} is writable by {writers(mode)} (mode {mode:04o}), and whoever can write "
        f"the config runs commands as this user; fix with `chmod go-w {where}`"
    )
