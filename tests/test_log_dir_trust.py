"""Trust: whoever can write the log dir runs commands as the runner's user (issue 16.1).

The reproduction: a mode-1777 ``logs/`` with the day's results file and the executor lock
planted as symlinks to other files, and a run queued by another account. Every command now
refuses such a log dir with one sentence naming the path and the fix (exit 78), the way sshd's
StrictModes refuses a home others can write; files in it are opened without following symlinks.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from conftest import job, run_cli, write_config

from batch_runner.errors import EXIT_CONFIG
from batch_runner.state.ownership import UnsafeLogDir, check_log_dir

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make files of others")
NOBODY = 65534


@pytest.fixture
def proj(project: Path) -> Path:
    write_config(project, [job("quick", "echo quick")])
    assert run_cli(project, "run-job", "quick").returncode == 0  # logs/, state/, batch/, runs/
    return project


def refused(result: subprocess.CompletedProcess, path: Path | str, fix: str) -> None:
    assert result.returncode == EXIT_CONFIG, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert str(path) in result.stderr and fix in result.stderr, result.stderr
    assert "can run commands as this user" in result.stderr


@root_only
def test_the_reproduced_attack_runs_nothing_and_writes_nowhere(proj: Path) -> None:
    logs = proj / "logs"
    victim, other = proj / "victim.txt", proj / "other.txt"
    victim.write_text("untouched\n")
    other.write_text("untouched too\n")
    marker = proj / "ran-as-victim"
    # What the other account left behind while logs/ was 1777: a queued command and symlinks.
    added = run_cli(proj, "queue", "add", "--priority", "100", "--", "touch", str(marker))
    assert added.returncode == 0, added.stderr
    day = time.strftime("%Y%m%d")
    results = logs / "batch" / f"batch_{day}.jsonl"
    results.unlink(missing_ok=True)
    results.symlink_to(victim)
    lock = logs / "state" / "executor.lock"
    lock.unlink()
    lock.symlink_to(other)
    logs.chmod(0o1777)

    for argv in (("run-job", "quick"), ("queue", "worker"), ("queue", "list"), ("history",)):
        refused(run_cli(proj, *argv), logs, f"chmod go-w {logs}")
    assert not marker.exists()
    assert victim.read_text() == "untouched\n" and other.read_text() == "untouched too\n"


@root_only
@pytest.mark.parametrize("folder", ["", "state", "batch", "runs"])
def test_a_folder_of_the_log_dir_that_others_can_write_is_refused(proj: Path, folder: str) -> None:
    path = proj / "logs" / folder if folder else proj / "logs"
    path.chmod(0o777)
    refused(run_cli(proj, "run-job", "quick"), path, f"chmod go-w {path}")


@root_only
def test_a_log_dir_of_another_account_is_refused(proj: Path) -> None:
    state = proj / "logs" / "state"
    os.chown(state, NOBODY, -1)
    refused(run_cli(proj, "status"), state, f"chown root {state}")
    assert "belongs to nobody" in run_cli(proj, "status").stderr


@root_only
def test_a_state_database_of_another_account_is_refused(proj: Path) -> None:
    database = proj / "logs" / "state" / "batch_runner.sqlite3"
    os.chown(database, NOBODY, -1)
    refused(run_cli(proj, "queue", "list"), database, f"`rm -r {database}`")


@root_only
def test_a_folder_symlinked_by_another_account_is_refused(proj: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    batch = proj / "logs" / "batch"
    os.rename(batch, elsewhere / "batch")
    batch.symlink_to(elsewhere / "batch")
    os.lchown(batch, NOBODY, -1)
    refused(run_cli(proj, "run-job", "quick"), batch, f"rm {batch}")


def test_symlinks_of_our_own_to_private_folders_are_fine(proj: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    runs = proj / "logs" / "runs"
    os.rename(runs, elsewhere / "runs")
    runs.symlink_to(elsewhere / "runs")
    result = run_cli(proj, "run-job", "quick")
    assert result.returncode == 0, result.stderr


@root_only
def test_a_symlinked_folder_whose_target_sits_in_an_open_folder_is_refused(
    proj: Path, tmp_path: Path
) -> None:
    open_folder = tmp_path / "open"
    open_folder.mkdir()
    open_folder.chmod(0o777)  # others could rename the target away and put theirs instead
    runs = proj / "logs" / "runs"
    os.rename(runs, open_folder / "runs")
    runs.symlink_to(open_folder / "runs")
    refused(run_cli(proj, "run-job", "quick"), proj / "logs", f"chmod go-w {open_folder}")


def test_a_folder_above_that_others_can_write_is_refused_unless_sticky(tmp_path: Path) -> None:
    above = tmp_path / "shared"
    log_dir = above / "project" / "logs"
    log_dir.mkdir(parents=True)
    above.chmod(0o777)
    with pytest.raises(UnsafeLogDir, match=f"{above} is writable by .* without the sticky bit"):
        check_log_dir(str(log_dir))
    above.chmod(0o1777)  # like /tmp: others cannot rename what is not theirs
    check_log_dir(str(log_dir))


@root_only
def test_group_write_is_fine_for_a_private_group_only(tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    log_dir.chmod(0o770)
    check_log_dir(str(log_dir))  # root's group has no other member: umask 002 is harmless
    os.chown(log_dir, 0, 100)  # "users": a group others belong to
    with pytest.raises(UnsafeLogDir, match="writable by its group"):
        check_log_dir(str(log_dir))


def test_a_log_dir_not_made_yet_is_fine(tmp_path: Path) -> None:
    check_log_dir(str(tmp_path / "not" / "yet"))


def test_a_planted_snapshot_symlink_is_not_followed(proj: Path, tmp_path: Path) -> None:
    snapshot = proj / "logs" / "state" / "config_snapshot.json"
    forged = json.loads(snapshot.read_text())
    forged["config"]["jobs"][0]["command"] = "echo forged"
    planted = tmp_path / "forged.json"
    planted.write_text(json.dumps(forged))
    snapshot.unlink()
    snapshot.symlink_to(planted)
    result = run_cli(proj, "run-job", "quick")
    assert result.returncode == 0, result.stderr
    assert "forged" not in (proj / "logs" / "runs").joinpath(_only_log(proj)).read_text()


def test_a_planted_lock_symlink_is_not_written_through(proj: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.txt"
    other.write_text("untouched\n")
    lock = proj / "logs" / "state" / "executor.lock"
    lock.unlink()
    lock.symlink_to(other)
    result = run_cli(proj, "run-job", "quick")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and f"`rm {lock}`" in result.stderr, result.stderr
    assert other.read_text() == "untouched\n"


def _only_log(proj: Path) -> str:
    logs = sorted((proj / "logs" / "runs").rglob("*.log"), key=os.path.getmtime)
    return str(logs[-1].relative_to(proj / "logs" / "runs"))


# --- what the outside review found (issue 16.1, second round) ----------------------------


@root_only
def test_a_folder_above_owned_by_another_account_is_refused(tmp_path: Path) -> None:
    """In /tmp, another account made the parent first: it could rename the log dir away."""
    above = tmp_path / "shared"
    log_dir = above / "logs"
    log_dir.mkdir(parents=True)
    os.chown(above, NOBODY, -1)
    with pytest.raises(UnsafeLogDir, match=f"{above} belongs to nobody, not to root"):
        check_log_dir(str(log_dir))


@root_only
def test_a_symlink_on_the_way_owned_by_another_account_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real"
    (real / "logs").mkdir(parents=True)
    link = tmp_path / "link"
    link.symlink_to(real)
    os.lchown(link, NOBODY, -1)  # its owner could point it elsewhere at any time
    with pytest.raises(UnsafeLogDir, match=f"{link} is a symlink owned by nobody"):
        check_log_dir(str(link / "logs"))
    os.lchown(link, 0, -1)
    check_log_dir(str(link / "logs"))


@root_only
@pytest.mark.parametrize(
    "planted", ["config_snapshot.json", "batch_runner.sqlite3-wal", "executor.lock"]
)
def test_a_file_planted_while_the_state_folder_was_open_is_refused(
    proj: Path, planted: str
) -> None:
    """Tightening the folder, as the first refusal advised, keeps what was put there."""
    path = proj / "logs" / "state" / planted
    path.write_bytes(b"")
    os.chown(path, NOBODY, -1)
    result = run_cli(proj, "run-job", "quick")
    refused(result, path, f"`rm -r {path}`")
    assert "may have been put there by another account" in result.stderr
    path.unlink()
    assert run_cli(proj, "run-job", "quick").returncode == 0


@root_only
def test_a_world_writable_results_file_is_refused(proj: Path) -> None:
    [results] = list((proj / "logs" / "batch").glob("*.jsonl"))
    results.chmod(0o666)
    refused(run_cli(proj, "history"), results, f"`rm -r {results}`")


def test_a_group_is_private_only_if_no_other_account_has_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Debian's rule: no other member, and no other account with it as its primary group
    (nobody, sync and _apt all have nogroup). The accounts are made up here: a test cannot
    make a second account with our primary group on a shared machine."""
    import grp
    import pwd

    from batch_runner.state import ownership

    info = os.stat(tmp_path)
    me = pwd.struct_passwd(("me", "x", info.st_uid, info.st_gid, "", "/", "/bin/sh"))
    other = pwd.struct_passwd(("other", "x", 4242, info.st_gid, "", "/", "/bin/sh"))
    group = grp.struct_group(("me", "x", info.st_gid, []))
    monkeypatch.setattr(pwd, "getpwuid", lambda uid: me)
    monkeypatch.setattr(grp, "getgrgid", lambda gid: group)
    monkeypatch.setattr(pwd, "getpwall", lambda: [me])
    assert ownership._private_group(info)
    monkeypatch.setattr(pwd, "getpwall", lambda: [me, other])
    assert not ownership._private_group(info)


def test_the_log_dir_is_made_0700_whatever_the_umask(project: Path) -> None:
    """Under umask 002 a log dir made group-writable would be refused (or, with a group
    others share, open to them): batch_runner makes it, and every folder in it, 0700."""
    write_config(project, [job("quick", "echo quick")])
    result = run_cli(project, "run-job", "quick", preexec_fn=lambda: os.umask(0o002))
    assert result.returncode == 0, result.stderr
    logs = project / "logs"
    for folder in (logs, logs / "state", logs / "batch", logs / "runs"):
        assert folder.stat().st_mode & 0o777 == 0o700, folder


# --- the second review ------------------------------------------------------------------


@root_only
def test_dot_dot_after_a_symlink_is_followed_as_the_kernel_does(tmp_path: Path) -> None:
    """`shared/../logs` with `shared` a symlink into a folder of another account: the kernel
    lands in that folder, so the check must too (it collapsed `..` as text before)."""
    evil = tmp_path / "evil"
    (evil / "box").mkdir(parents=True)
    evil.chmod(0o1777)
    os.chown(evil, NOBODY, -1)
    project = tmp_path / "proj"
    project.mkdir()
    (project / "shared").symlink_to(evil / "box")
    with pytest.raises(UnsafeLogDir, match=f"{evil} belongs to nobody"):
        check_log_dir(str(project / "shared" / ".." / "logs"))
    assert not (evil / "logs").exists()


@root_only
def test_a_log_dir_made_by_another_account_before_ours_is_refused(tmp_path: Path) -> None:
    """Made first, then checked: another account racing to make it in /tmp loses either way."""
    shared = tmp_path / "tmp"
    shared.mkdir(mode=0o1777)
    shared.chmod(0o1777)
    mine = shared / "logs"
    check_log_dir(str(mine))
    assert mine.is_dir() and mine.stat().st_mode & 0o777 == 0o700  # made by the check, ours
    theirs = shared / "their-logs"
    theirs.mkdir()
    os.chown(theirs, NOBODY, -1)  # as if another account made it between check and use
    with pytest.raises(UnsafeLogDir, match="belongs to nobody"):
        check_log_dir(str(theirs))


@root_only
def test_a_symlink_planted_beside_the_folders_is_refused(proj: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("untouched\n")
    cron_log = proj / "logs" / "cron.log"
    cron_log.symlink_to(victim)
    os.lchown(cron_log, NOBODY, -1)
    refused(run_cli(proj, "status"), cron_log, f"`rm -r {cron_log}`")


def test_a_second_hard_link_in_the_log_dir_is_refused(proj: Path, tmp_path: Path) -> None:
    """Where fs.protected_hardlinks is off, another account can link a file of ours (or of
    root's) into an open folder; appending to it would write to that file."""
    victim = tmp_path / "victim.txt"
    victim.write_text("untouched\n")
    linked = proj / "logs" / "batch" / "batch_20991231.jsonl"
    os.link(victim, linked)
    result = run_cli(proj, "history")
    assert result.returncode == 78 and "2 hard links" in result.stderr, result.stderr


def test_the_snapshots_temp_file_is_never_wider_than_0600(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A check running while the snapshot was being written saw a 0666 temp file (under
    umask 000) and refused it as planted."""
    import batch_runner.files as files

    seen: list[int] = []
    real_write_all = files.write_all

    def spy(fd: int, data: bytes, offset: int | None = None) -> None:
        seen.append(os.fstat(fd).st_mode & 0o777)  # the temp file, as a check would see it
        real_write_all(fd, data, offset)

    monkeypatch.setattr(files, "write_all", spy)
    old = os.umask(0)
    try:
        files.write_atomic(tmp_path / "snap.json", b"{}", mode=0o600)
    finally:
        os.umask(old)
    assert seen == [0o600]


@root_only
def test_an_access_control_list_on_the_way_is_refused(tmp_path: Path) -> None:
    """`user:nobody:rwx` in an ACL lets nobody write whatever the mode bits (0770) say."""
    import struct

    folder = tmp_path / "acl"
    folder.mkdir()

    def entry(tag: int, perm: int, ident: int = 0xFFFFFFFF) -> bytes:
        return struct.pack("<HHI", tag, perm, ident)

    # user::rwx, user:nobody:rwx, group::r-x, mask::rwx, other::r-x (the kernel's format)
    acl = struct.pack("<I", 2) + entry(1, 7) + entry(2, 7, NOBODY) + entry(4, 5)
    acl += entry(0x10, 7) + entry(0x20, 5)
    try:
        os.setxattr(folder, "system.posix_acl_access", acl)
    except OSError as exc:
        pytest.skip(f"this file system takes no ACL: {exc}")
    with pytest.raises(UnsafeLogDir, match=f"{folder} has an access control list"):
        check_log_dir(str(folder / "logs"))
