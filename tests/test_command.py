"""The pure helpers behind an attempt: shell detection, argv, child environment, start errors."""

from __future__ import annotations

import shlex
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batch_runner.execution.command import (
    SHELL,
    build_argv,
    build_child_env,
    needs_shell,
    split_words,
)

PLAIN = [
    "python main.py --mode single",
    "python main.py --mode=analysis --verbose",
    "  /usr/bin/env   python3 -u script.py  ",
    "python -c 'print(1); print(2)'",  # the ; is quoted
    """echo "hello world" 'it''s'""",
    """tool --json '{"a": [1, 2]}'""",
    'grep -e "a|b" file.txt',
    'echo "a\\"b" "c\\d"',
    "echo a\\ b \\;",
    "ls -la /tmp/dir-1/file_2.txt",
    "make CC=gcc install",  # only a leading NAME=value is an assignment
    "curl 'https://example.com/path?q=1&b=2'",
]

SHELLY = [
    "a | b",
    "a && b",
    "a || b",
    "a; b",
    "a & b",
    "a > out.txt",
    "a < in.txt",
    "a 2>&1",
    "echo $HOME",
    "echo ${HOME}",
    'echo "$HOME"',
    'echo "\\$HOME"',
    "echo `date`",
    "echo $(date)",
    "ls *.py",
    "ls file?.txt",
    "ls [ab].txt",
    "FOO=bar python x.py",
    "  A_1=x cmd",
    "cat ~/notes",
    "echo a\necho b",
    "echo hi # a comment",
    "(cd /tmp; ls)",
    "{ echo a; }",
    "echo 'unbalanced",
    'echo "unbalanced',
    "trailing\\",
    "exit 3",
    "cd /tmp",
    "source env.sh",
    ". ./env.sh",
    "! false",
    "export A=1",
]


@pytest.mark.parametrize("command", PLAIN)
def test_plain_commands_need_no_shell(command: str) -> None:
    assert needs_shell(command) is False


@pytest.mark.parametrize("command", SHELLY)
def test_shell_syntax_needs_a_shell(command: str) -> None:
    assert needs_shell(command) is True


@pytest.mark.parametrize("command", PLAIN)
def test_a_plain_command_splits_as_sh_would(command: str) -> None:
    """The point of running without a shell: the argv must be exactly what sh would build."""
    printer = "printf '%s\\0' "  # sh parses the command's words into printf's arguments
    done = subprocess.run([SHELL, "-c", printer + command], capture_output=True, timeout=10)
    assert done.stdout.split(b"\0")[:-1] == [w.encode() for w in shlex.split(command)]


def test_empty_command_needs_no_shell_and_has_no_argv() -> None:
    assert needs_shell("") is False
    assert build_argv("   ", "auto") == []


def test_a_list_is_argv_as_is_and_never_shell() -> None:
    argv = ["echo", "a | b", "$HOME"]
    assert build_argv(argv, "auto") == argv
    assert build_argv(argv, True) == argv
    assert build_argv(argv, True) is not argv  # a copy: the request cannot alias the spec


def test_string_commands_follow_the_shell_setting() -> None:
    assert build_argv("python main.py --mode single", "auto") == [
        "python",
        "main.py",
        "--mode",
        "single",
    ]
    assert build_argv("a | b", "auto") == [SHELL, "-c", "a | b"]
    assert build_argv("python main.py", True) == [SHELL, "-c", "python main.py"]
    assert build_argv("echo 'a b' > out", False) == ["echo", "a b", ">", "out"]


def test_child_env_layers_runner_job_and_run_variables() -> None:
    base = {"PATH": "/bin", "HOME": "/root", "BATCH_RUN_ID": "outer", "KEEP": "1"}
    env = build_child_env(
        base,
        {"HOME": "/home/job", "BATCH_RUN_ID": "spoofed", "EXTRA": "x"},
        run_id="r-1",
        job_name="nightly",
        attempt=2,
        config_path="/etc/br/config.json",
    )
    assert env == {
        "PATH": "/bin",
        "HOME": "/home/job",
        "KEEP": "1",
        "EXTRA": "x",
        "BATCH_RUN_ID": "r-1",
        "BATCH_JOB_ID": "r-1",
        "BATCH_JOB_NAME": "nightly",
        "BATCH_ATTEMPT": "2",
        "BATCH_RUNNER_CONFIG": "/etc/br/config.json",
        "PYTHONUNBUFFERED": "1",
    }
    assert base["BATCH_RUN_ID"] == "outer"  # the runner's environment is not touched


@settings(max_examples=2000, deadline=None)
@given(
    st.text(alphabet=st.sampled_from(list(" \t\x0b\x0c\x1c\xa0\u2003ab-#=/'\"\\\n")), max_size=12)
)
def test_split_words_is_shlex_split(command: str) -> None:
    try:
        expected = shlex.split(command)
    except ValueError:
        with pytest.raises(ValueError):
            split_words(command)
        return
    assert split_words(command) == expected
