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
from batch_runner.files import make_private_dirs
from batch_runner.state.layout import LogLayout

_MAX_SYMLINKS = 40  # as the kernel's ELOOP limit


class UnsafeLogDir(ConfigError):
    """The log dir, a folder on the way to it or in it, or a file in it, is another's to write."""


def check_log_dir(log_dir: str) -> None:
    """Refuse with one sentence (``UnsafeLogDir``) a log dir another account could write.

    A log dir that does not exist yet is made first (0700, each missing folder), then checked
    like any other: between a check and a later ``mkdir`` another account could make it, in
    /tmp say, and fill it. ``..`` is followed as the kernel follows it, after the symlinks
    before it, never collapsed as text.
    """
    euid = os.geteuid()
    whole = log_dir if log_dir.startswith("/") else os.getcwd() + "/" + log_dir
    for path, info, last in _folders_on_the_way(_parts(whole), euid):
        _check_folder(log_dir, path, info, euid, inside=last)
    if not os.path.isdir(whole):  # the way to it is sound: make it, then look again
        try:
            make_private_dirs(whole)
        except OSError:
            pass  # the writes that need it fail with one sentence of their own
        for path, info, last in _folders_on_the_way(_parts(whole), euid):
            _check_folder(log_dir, path, info, euid, inside=last)
    real = os.path.realpath(whole)
    layout = LogLayout(real)
    for name, folder in (
        ("state", layout.state_dir),
        ("batch", layout.results_dir),
        ("runs", layout.runs_dir),
    ):
        for path, info, last in _folders_on_the_way([name], euid, start=real):
            _check_folder(log_dir, path, info, euid, inside=last)
        _check_entries(log_dir, folder, euid)
    # cron.log, and anything planted beside the three folders (checked above as folders).
    _check_entries(log_dir, real, euid, skip=("state", "batch", "runs"))


def _folders_on_the_way(
    parts: list[str], euid: int, start: str = "/"
) -> list[tuple[str, os.stat_result, bool]]:
    """Each existing folder along ``parts`` from ``start`` (a real path), symlinks followed one
    by one (each checked on the way) and ``..`` after them, as the kernel walks a path; with
    whether it is the last."""
    found: list[tuple[str, os.stat_result, bool]] = []
    current = start
    pending = list(parts)
    hops = 0
    path = "/".join([start.rstrip("/"), *parts])
    while pending:
        name = pending.pop(0)
        if name == "..":
            current = os.path.dirname(current)
            continue
        candidate = os.path.join(current, name)
        try:
            info = os.lstat(candidate)
        except OSError:
            return found  # not there: it could not be made, and its writes fail on their own
        if stat.S_ISLNK(info.st_mode):
            if info.st_uid not in (euid, 0):
                why = f"{candidate} is a symlink owned by {user_name(info.st_uid)}"
                _refuse(path, why, f"use a path without it, or `rm {candidate}`")
            hops += 1
            if hops > _MAX_SYMLINKS:
                return found  # a loop: every use of the path fails with ELOOP
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
        why = f"{path} belongs to {user_name(info.st_uid)}, not to {_who_may(euid)}"
        fix = f"fix with `chown {user_name(euid)} {path}`, or set settings.log_dir to a "
        fix += "folder of yours"
        _refuse(log_dir, why, fix)
    mode = stat.S_IMODE(info.st_mode)
    if _has_acl(path) and (inside or not mode & stat.S_ISVTX):
        # Named users or groups in an ACL may write whatever the mode bits say.
        why = f"{path} has an access control list, which may let other accounts write to it"
        _refuse(log_dir, why, f"fix with `setfacl -b {path}`")
    if _open_to_others(info) and (inside or not mode & stat.S_ISVTX):
        sticky = "" if inside else " without the sticky bit"
        why = f"{path} is writable by {writers(mode)} (mode {mode:04o}){sticky}"
        _refuse(log_dir, why, f"fix with `chmod go-w {path}`")


def _check_entries(log_dir: str, folder: str, euid: int, skip: tuple[str, ...] = ()) -> None:
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        if entry.name in skip:
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        # A second hard link may be another account's file linked in while the folder was
        # open (where fs.protected_hardlinks is off): writing to it would write to theirs.
        linked = stat.S_ISREG(info.st_mode) and info.st_nlink > 1
        if (
            linked
            or info.st_uid not in (euid, 0)
            or (not stat.S_ISLNK(info.st_mode) and _open_to_others(info))
        ):
            owner = user_name(info.st_uid)
            mode = stat.S_IMODE(info.st_mode)
            links = f", {info.st_nlink} hard links" if linked else ""
            why = (
                f"{entry.path} (owner {owner}, mode {mode:04o}{links}) may have been put there "
                "by another account"
            )
            _refuse(log_dir, why, f"remove it if it is not yours (`rm -r {entry.path}`)")


def _has_acl(path: str) -> bool:
    """An extended POSIX ACL (a minimal one, the mode bits alone, is not stored)."""
    try:
        os.getxattr(path, "system.posix_acl_access", follow_symlinks=False)
    except OSError:  # ENODATA: none; ENOTSUP: a file system without ACLs
        return False
    return True


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


def writers(mode: int) -> str:
    """Who besides the owner may write, by the mode bits: for a sentence."""
    if mode & stat.S_IWGRP and mode & stat.S_IWOTH:
        return "group and others"
    return "its group" if mode & stat.S_IWGRP else "others"


def _who_may(euid: int) -> str:
    return "root" if euid == 0 else f"{user_name(euid)} or root"


def user_name(uid: int) -> str:
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
