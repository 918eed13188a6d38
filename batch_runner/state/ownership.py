"""Whose log dir: whoever can write it runs commands as the runner's user.

The log dir holds the queue (the state database), the config snapshot every command trusts
instead of validating again, the locks and the results. Another account that can create or
replace a file there can queue a command, plant a snapshot with its own commands, or make a
write land in a file of its choosing through a symlink. So, like sshd's StrictModes, every
command refuses a log dir, or one of its folders, that:

- belongs to an account other than the current user or root (a symlink among them too);
- group or others can write: a group write is allowed only for the owner's private group
  (the owner's primary group with no other member), as Debian's sshd allows it, because a
  umask of 002 gives every new folder of such a user that bit;
- sits in a folder that group or others can write without the sticky bit (they could rename
  the log dir away and put their own in its place).

Who owns the folders above the log dir is not checked, as for the config file: the account
that owns the project can edit the config, which already runs commands as this user.
"""

from __future__ import annotations

import os
import stat

from batch_runner.errors import ConfigError
from batch_runner.state.layout import LogLayout

_WRITABLE = stat.S_IWGRP | stat.S_IWOTH


class UnsafeLogDir(ConfigError):
    """The log dir, a folder of it or a folder above it can be written by another account."""


def check_log_dir(log_dir: str) -> None:
    """Refuse with one sentence (``UnsafeLogDir``) a log dir another account could write."""
    layout = LogLayout(log_dir)
    euid = os.geteuid()
    followed = []
    for folder in (log_dir, layout.state_dir, layout.results_dir, layout.runs_dir):
        if _check_owned(log_dir, folder, euid, what="folder"):
            followed.append(folder)
    _check_owned(log_dir, layout.database, euid, what="file")
    for folder in [log_dir, *followed]:
        _check_folders_above(log_dir, folder)


def _check_owned(log_dir: str, path: str, euid: int, *, what: str) -> bool:
    """Check ``path`` if it exists; True when it is a symlink (its target's folders differ)."""
    try:
        info = os.lstat(path)
    except OSError:
        return False  # not there yet: it is created 0700, by us
    is_link = stat.S_ISLNK(info.st_mode)
    if is_link:
        if info.st_uid not in (euid, 0):
            why = f"{path} is a symlink owned by {_user(info.st_uid)}"
            _refuse(log_dir, why, f"fix with `rm {path}`")
        try:
            info = os.stat(path)
        except OSError:
            return False  # a dangling link: creating through it fails with one sentence later
    if info.st_uid not in (euid, 0):
        why = f"the {what} {path} belongs to {_user(info.st_uid)}, not to {_user(euid)} or root"
        fix = f"fix with `chown {_user(euid)} {path}`, or set settings.log_dir to a folder of yours"
        _refuse(log_dir, why, fix)
    mode = stat.S_IMODE(info.st_mode)
    if mode & stat.S_IWOTH or (mode & stat.S_IWGRP and not _private_group(info)):
        why = f"the {what} {path} is writable by {_who(mode)} (mode {mode:04o})"
        _refuse(log_dir, why, f"fix with `chmod go-w {path}`")
    return is_link


def _check_folders_above(log_dir: str, path: str) -> None:
    folder = os.path.dirname(os.path.realpath(path))
    while True:
        try:
            mode = stat.S_IMODE(os.stat(folder).st_mode)
        except OSError:
            mode = 0
        if _writable_by_others(folder, mode) and not mode & stat.S_ISVTX:
            why = (
                f"{folder}, a folder above it, is writable by {_who(mode)} "
                f"(mode {mode:04o}) without the sticky bit"
            )
            _refuse(log_dir, why, f"fix with `chmod go-w {folder}`")
        parent = os.path.dirname(folder)
        if parent == folder:
            return
        folder = parent


def _writable_by_others(path: str, mode: int) -> bool:
    if mode & stat.S_IWOTH:
        return True
    return bool(mode & stat.S_IWGRP) and not _private_group(os.stat(path))


def _private_group(info: os.stat_result) -> bool:
    """The file's group is its owner's own: the owner's primary group, no other member."""
    import grp
    import pwd

    try:
        owner = pwd.getpwuid(info.st_uid)
        members = grp.getgrgid(info.st_gid).gr_mem
    except KeyError:
        return False
    return owner.pw_gid == info.st_gid and all(name == owner.pw_name for name in members)


def _who(mode: int) -> str:
    if mode & stat.S_IWGRP and mode & stat.S_IWOTH:
        return "group and others"
    return "its group" if mode & stat.S_IWGRP else "others"


def _user(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _refuse(log_dir: str, why: str, fix: str) -> None:
    raise UnsafeLogDir(
        f"refusing to use the log dir {log_dir}: {why}, and whoever can write there can run "
        f"commands as this user; {fix}"
    )
