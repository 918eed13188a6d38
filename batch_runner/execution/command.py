"""What a job's command becomes: an argv and a child environment (pure functions, SPEC 3 and 5).

A string command runs under ``/bin/sh -c`` only when it needs a shell. The test errs towards
the shell: a plain command run by ``sh -c`` behaves the same (``sh`` execs it), while shell
syntax run without a shell silently does something else (``a | b`` passes ``|`` as an argument).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from functools import lru_cache

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Literal
SHELL = "/bin/sh"

# Outside quotes these mean something to sh: operators, expansions, globs, comments, grouping,
# tilde expansion, line breaks. ``!`` and braces are kept for bash-minded users; a false
# positive only costs a shell process.
_SPECIAL_UNQUOTED = frozenset("|&;<>()$`*?[#~{}!")
# Inside double quotes sh still expands these, escaped or not (``"\\$x"`` differs from shlex).
_SPECIAL_IN_DOUBLE = frozenset("$`")
# ``FOO=bar cmd``: an assignment prefix only sh understands.
_ASSIGNMENT = re.compile(r"\s*[A-Za-z_][A-Za-z0-9_]*=")
# Builtins and keywords with no program of the same name: ``exit 3`` must go to sh.
_SHELL_ONLY_WORDS = frozenset(
    {
        ".",
        ":",
        "alias",
        "break",
        "case",
        "cd",
        "continue",
        "do",
        "done",
        "elif",
        "else",
        "esac",
        "eval",
        "exec",
        "exit",
        "export",
        "fi",
        "for",
        "function",
        "if",
        "readonly",
        "return",
        "select",
        "set",
        "shift",
        "source",
        "then",
        "times",
        "trap",
        "ulimit",
        "umask",
        "unalias",
        "unset",
        "until",
        "wait",
        "while",
        "[[",
    }
)


def needs_shell(command: str) -> bool:
    """True when ``command`` uses shell syntax that ``shlex.split`` cannot reproduce."""
    if "\n" in command or "\r" in command or _ASSIGNMENT.match(command):
        return True
    if _has_special_chars(command):
        return True
    try:
        words = split_words(command)
    except ValueError:
        return True  # unbalanced quotes: let sh report the syntax error in its own words
    return bool(words) and words[0] in _SHELL_ONLY_WORDS


def _has_special_chars(command: str) -> bool:
    """Scan with sh's quoting rules; an unterminated quote or escape counts as special."""
    quote: str | None = None
    escaped = False
    for char in command:
        if quote == '"' and char in _SPECIAL_IN_DOUBLE:
            return True
        if escaped:
            escaped = False
        elif quote == "'":
            quote = None if char == "'" else quote
        elif quote == '"':
            escaped = char == "\\"
            quote = None if char == '"' else quote
        elif char == "\\":
            escaped = True
        elif char in "'\"":
            quote = char
        elif char in _SPECIAL_UNQUOTED:
            return True
    return quote is not None or escaped


def build_argv(command: str | list[str], shell: bool | Literal["auto"] = "auto") -> list[str]:
    """The argv of an attempt: a list as is (never a shell), a string per ``shell``."""
    if isinstance(command, list):
        return [str(arg) for arg in command]
    return list(_string_argv(command, shell))


@lru_cache(maxsize=1024)
def _string_argv(command: str, shell: bool | Literal["auto"]) -> tuple[str, ...]:
    # Cached: a queue drains the same few commands over and over, each split twice.
    if shell is True or (shell == "auto" and needs_shell(command)):
        return (SHELL, "-c", command)
    return tuple(split_words(command))


# Without these, and with no control character, ``shlex.split`` splits on blanks alone.
_QUOTING = frozenset("'\"\\")


def split_words(command: str) -> list[str]:
    """``shlex.split(command)``. Most commands hold no quote and no escape: for them a split on
    blanks gives the same words and spares run-job the import of shlex."""
    plain = command.isascii() and command.replace("\t", " ").isprintable()
    if plain and _QUOTING.isdisjoint(command):
        return command.split()
    import shlex

    return shlex.split(command)


def build_child_env(
    base: Mapping[str, str],
    job_env: Mapping[str, str],
    *,
    run_id: str,
    job_name: str,
    attempt: int,
    config_path: str | os.PathLike[str],
) -> dict[str, str]:
    """The runner's environment, then the job's ``env``, then the run's own variables.

    The run's variables come last so a job cannot hide which run it belongs to:
    ``BATCH_RUN_ID`` is also how stragglers that left the process group are found and killed.
    """
    env = dict(base)
    env.update({str(key): str(value) for key, value in job_env.items()})
    env.update(
        {
            "BATCH_RUN_ID": run_id,
            "BATCH_JOB_ID": run_id,
            "BATCH_JOB_NAME": job_name,
            "BATCH_ATTEMPT": str(attempt),
            "BATCH_RUNNER_CONFIG": str(config_path),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env
