"""The words of an attempt's ending: statuses, reasons, start errors (pure)."""

from __future__ import annotations

import errno

import pytest

from batch_runner.execution.judge import format_seconds, judge, start_error


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(1800, "1800"), (1800.0, "1800"), (0.3, "0.3"), (2.5, "2.5"), (0.0001, "0.0001")],
)
def test_timeout_seconds_have_no_useless_decimals(seconds: float, text: str) -> None:
    assert format_seconds(seconds) == text
    assert judge("timeout", None, seconds) == ("timeout", f"timed out after {text} s")


@pytest.mark.parametrize(
    ("verdict", "returncode", "expected"),
    [
        (None, 0, ("success", None)),
        (None, 2, ("error", "exit code 2")),
        (None, -9, ("error", "killed by signal 9 (SIGKILL)")),
        (None, -15, ("error", "killed by signal 15 (SIGTERM)")),
        ("stopped", None, ("stopped", "stopped by request")),
        ("interrupted", 0, ("interrupted", "interrupted: runner shutting down")),
        ("timeout", 0, ("timeout", "timed out after 1800 s")),
    ],
)
def test_judge(verdict: str | None, returncode: int, expected: tuple[str, str | None]) -> None:
    assert judge(verdict, returncode, 1800) == expected


@pytest.mark.parametrize(
    ("argv", "exc", "message"),
    [
        (["foo"], FileNotFoundError(errno.ENOENT, "No such file", "foo"), "command not found: foo"),
        (
            ["./x.sh"],
            PermissionError(errno.EACCES, "Permission denied", "./x.sh"),
            "permission denied: ./x.sh",
        ),
        (
            ["true"],
            FileNotFoundError(errno.ENOENT, "No such file", "/nope"),
            "working directory does not exist: /nope",
        ),
        (
            ["true"],
            NotADirectoryError(errno.ENOTDIR, "Not a dir", "/nope"),
            "working directory is not a directory: /nope",
        ),
        (
            ["./x"],
            OSError(errno.ENOEXEC, "Exec format error", "./x"),
            "cannot execute ./x: not a program, nor a script with a #! line",
        ),
        (
            ["x"],
            OSError(errno.E2BIG, "Argument list too long", "x"),
            "cannot start x: Argument list too long",
        ),
        (["x\0y"], ValueError("embedded null byte"), "cannot start x\0y: embedded null byte"),
        ([], ValueError("empty command"), "empty command"),
    ],
)
def test_start_errors_are_one_clear_line(argv: list[str], exc: Exception, message: str) -> None:
    assert start_error(argv, "/nope", exc) == message
