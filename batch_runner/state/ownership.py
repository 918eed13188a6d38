"""Whose log dir: whoever can write it runs commands as the runner's user.

The log dir holds the queue (the state database), the config snapshot every command trusts
instead of validating again, the locks and the results. Another account that can create,
replace or rename a file there, or any folder on the way to it, can queue a command, plant a
snapshot with its own commands, or make a write land in a file of its choosing. So, like sshd's
StrictModes, every command refuses a log dir when:

- a folder on the way from ``/`` to it, the log dir itself, or a symlink on that way belongs
  to an account other than the current user or root;
- a folder on the way is writable by group or others without the sticky bit (they could
  rename what follows away and put their own in its place);
- the log dir, or its ``state/``, ``batch/`` or ``runs/`` folder, is writable by group or
  others at all; a group write is allowed only for the owner's private group (the owner's
  primary group, which no other account has as its group or is a member of), as Debian's sshd
  allows it, because a umask of 002 gives every new folder of such a user that bit;
- an entry of those three folders (the database and its ``-wal``, the snapshot, a lock, a day
  of run logs, a results file) belongs to another account or is writable by group or others:
  it may have been planted while a folder was open, and tightening the folder keeps it.
"""

from __future__ import annotations

import os
import stat

from batch_runner.errors import ConfigError
from batch_runner.state.layout import LogLayout

_MAX_SYMLINKS = 40  # as the kernel's ELOOP limit


class UnsafeLogDir(ConfigError):
    """The log dir, a folder on the way to it or in it, or a file in it, is another's to write."""


def check_log_dir(log_dir: str) -> None:
    """Refuse with one sentence (``UnsafeLogDir``) a log dir another account could write."""
    euid = os.geteuid()
    for path, info, inside in _folders_on_the_way(os.path.abspath(log_dir), euid):
        _check_folder(log_dir, path, info, euid, inside=inside)
    layout = LogLayout(log_dir)
    for folder in (layout.state_dir, layout.results_dir, layout.runs_dir):
        for path, info, last in _folders_on_the_way(folder, euid, os.path.abspath(log_dir)):
            _check_folder(log_dir, path, info, euid, inside=last)
        _check_entries(log_dir, folder, euid)


def _folders_on_the_way(
    path: str, euid: int, start: str = "/"
) -> list[tuple[str, os.stat_result, bool]]:
    """Each existing folder from ``start`` to ``path``, symlinks followed one by one (each
    checked on the way), with whether it is ``path`` itself."""
    found: list[tuple[str, os.stat_result, bool]] = []
    current = start if start == "/" else os.path.realpath(start)
    pending = _parts(os.path.relpath(path, start) if start != "/" else path)
    hops = 0
    while pending:
        name = pending.pop(0)
        if name == "..":
            current = os.path.dirname(current)
            continue
        candidate = os.path.join(current, name)
        try:
            info = os.lstat(candidate)
        except OSError:
            return found  # not there yet: batch_runner makes the rest, 0700
        if stat.S_ISLNK(info.st_mode):
            if info.st_uid not in (euid, 0):
                why = f"{candidate} is a symlink owned by {_user(info.st_uid)}"
                _refuse(path, why, f"use a path without it, or `rm {candidate}`")
            hops += 1
            if hops > _MAX_SYMLINKS:
                return found
            target = os.readlink(candidate)
            pending = _parts(target) + pending
            current = "/" if target.startswith("/") else current
            continue
        found.append((candidate, info, not pending))
        current = candidate
    return found


def _parts(path: str) -> list[str]:
    return [part for part in path.split("/") if part not in ("", ".")]


def _check_folder(
    log_dir: str, path: str, info: os.stat_result, euid: int, *, inside: bool
) -> None:
    """``inside``: the log dir or a folder in it, which nobody else may write; a folder above
    it may be open to others only with the sticky bit (like /tmp)."""
    if info.st_uid not in (euid, 0):
        why = f"{path} belongs to {_user(info.st_uid)}, not to {_who_may(euid)}"
        fix = f"fix with `chown {_user(euid)} {path}`, or set settings.log_dir to a folder of yours"
        _refuse(log_dir, why, fix)
    mode = stat.S_IMODE(info.st_mode)
    if _open_to_others(info) and (inside or not mode & stat.S_ISVTX):
        sticky = "" if inside else " without the sticky bit"
        why = f"{path} is writable by {_others(mode)} (mode {mode:04o}){sticky}"
        _refuse(log_dir, why, f"fix with `chmod go-w {path}`")


def _check_entries(log_dir: str, folder: str, euid: int) -> None:
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if info.st_uid not in (euid, 0) or (
            not stat.S_ISLNK(info.st_mode) and _open_to_others(info)
        ):
            owner = _user(info.st_uid)
            mode = stat.S_IMODE(info.st_mode)
            why = (
                f"{entry.path} (owner {owner}, mode {mode:04o}) may have been put there by "
                "another account"
            )
            _refuse(log_dir, why, f"remove it if it is not yours (`rm -r {entry.path}`)")


def _open_to_others(info: os.stat_result) -> bool:
    mode = info.st_mode
    if mode & stat.S_IWOTH:
        return True
    return bool(mode & stat.S_IWGRP) and not _private_group(info)


def _private_group(info: os.stat_result) -> bool:
    """The file's group is its owner's own: the owner's primary group, and no other account
    has it as its primary group or is listed as a member (Debian's sshd rule)."""
    import grp
    import pwd

    try:
        owner = pwd.getpwuid(info.st_uid)
        members = grp.getgrgid(info.st_gid).gr_mem
    except KeyError:
        return False
    if owner.pw_gid != info.st_gid or any(name != owner.pw_name for name in members):
        return False
    return all(
        account.pw_uid == owner.pw_uid
        for account in pwd.getpwall()
        if account.pw_gid == info.st_gid
    )


def _others(mode: int) -> str:
    if mode & stat.S_IWGRP and mode & stat.S_IWOTH:
        return "group and others"
    return "its group" if mode & stat.S_IWGRP else "others"


def _who_may(euid: int) -> str:
    return "root" if euid == 0 else f"{_user(euid)} or root"


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
