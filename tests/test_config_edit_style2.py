"""The editing commands keep every byte but the edited job's: line endings, a byte order mark,
an empty or missing ``"jobs"``, blank lines, unicode, mixed job styles, tabs (review-edit).

Each case runs the CLI on a file and compares the whole file before and after, byte for byte:
the result must be the old bytes with exactly one expected piece of text replaced. Every case
runs on the file as written (LF) and again with CRLF line endings and a UTF-8 byte order mark,
which an edit must keep, in the text it adds as much as in the text it leaves alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli

BOM = b"\xef\xbb\xbf"
NEW = (
    '{"name": "new", "command": "echo new", "schedule_type": "daily", '
    '"schedule_time": "03:00", "enabled": true}'
)
ADD = ("add", "new", "echo new", "--type", "daily", "--time", "03:00")

ONE_LINE_JOBS = """{
  "settings": {"timezone": "UTC"},
  "jobs": [
    {"name": "a", "command": "echo a", "schedule_type": "interval", "schedule_time": "1h"},
    {"name": "b", "command": "echo b", "schedule_type": "daily", "schedule_time": "02:00", "enabled": true}
  ],
  "x-owner": "ops"
}
"""  # noqa: E501

FOUR_SPACE_BLOCKS = """{
    "jobs": [
        {
            "name": "a",
            "command": "echo a",
            "schedule_type": "interval",
            "schedule_time": "1h"
        }
    ],
    "x-owner": "ops"
}
"""

TAB_BLOCKS = FOUR_SPACE_BLOCKS.replace("    ", "\t")

# A compact settings block that a full rewrite (json.dumps, indent=2) would spread over lines.
EMPTY_JOBS = """{
  "settings": {"timezone": "UTC", "retention_days": 7},
  "jobs": [],
  "x-owner": "ops"
}
"""

NO_JOBS = """{
    "settings": {"timezone": "UTC", "retention_days": 7},
    "x-owner": "ops"
}
"""

# JSON has no comments, so people write them as keys and strings, and part jobs with blank lines.
COMMENTED = """{
  "//": "jobs below run nightly; /* keep */ [see the wiki], {\\"x\\": 1}",
  "jobs": [
    {"name": "a", "command": "echo '] }, {' # not a comment", "schedule_type": "interval", "schedule_time": "1h"},

    {"name": "b", "command": "echo b // still a string", "schedule_type": "daily", "schedule_time": "02:00"},

    {"name": "c", "command": "echo c", "schedule_type": "interval", "schedule_time": "15m"}
  ]
}
"""  # noqa: E501

UNICODE = """{
  "über-owner": "Jürgen Groß, 日本 📦",
  "jobs": [
    {"name": "a", "description": "Sicherung 💾 für Ärzte", "command": "echo \\u00e9t\\u00e9", "schedule_type": "interval", "schedule_time": "1h"},
    {
      "name": "b",
      "description": "naïve ☃",
      "command": "echo b",
      "schedule_type": "daily",
      "schedule_time": "02:00"
    }
  ]
}
"""  # noqa: E501

# One job written compactly between jobs written as blocks.
MIXED = """{
  "jobs": [
    {
      "name": "a",
      "command": "echo a",
      "schedule_type": "interval",
      "schedule_time": "1h"
    },
    {"name": "b", "command": "echo b", "schedule_type": "daily", "schedule_time": "02:00"},
    {
      "name": "c",
      "command": "echo c",
      "schedule_type": "interval",
      "schedule_time": "15m"
    },
    {"name": "d", "command": "echo d", "schedule_type": "daily", "schedule_time": "04:00"}
  ]
}
"""

# (id, file, argv, old, new): the file after the edit is the file with ``old`` made ``new``.
CASES = [
    (
        "add-one-line",
        ONE_LINE_JOBS,
        ADD,
        '"enabled": true}\n  ],',
        '"enabled": true},\n    ' + NEW + "\n  ],",
    ),
    (
        "add-block",
        FOUR_SPACE_BLOCKS,
        ADD,
        '"1h"\n        }\n',
        '"1h"\n        },\n        {\n            "name": "new",\n'
        '            "command": "echo new",\n            "schedule_type": "daily",\n'
        '            "schedule_time": "03:00",\n            "enabled": true\n        }\n',
    ),
    (
        "add-tab-block",
        TAB_BLOCKS,
        ADD,
        '"1h"\n\t\t}\n',
        '"1h"\n\t\t},\n\t\t{\n\t\t\t"name": "new",\n\t\t\t"command": "echo new",\n'
        '\t\t\t"schedule_type": "daily",\n\t\t\t"schedule_time": "03:00",\n'
        '\t\t\t"enabled": true\n\t\t}\n',
    ),
    (
        "disable-block",
        FOUR_SPACE_BLOCKS,
        ("disable", "a"),
        '"1h"\n',
        '"1h",\n            "enabled": false\n',
    ),
    (
        "disable-tab-block",
        TAB_BLOCKS,
        ("disable", "a"),
        '"1h"\n',
        '"1h",\n\t\t\t"enabled": false\n',
    ),
    ("disable-one-line", ONE_LINE_JOBS, ("disable", "a"), '"1h"},', '"1h", "enabled": false},'),
    ("disable-value", ONE_LINE_JOBS, ("disable", "b"), "true}", "false}"),
    (
        "remove-first",
        ONE_LINE_JOBS,
        ("remove", "a"),
        ONE_LINE_JOBS.splitlines()[3].strip() + "\n    ",
        "",
    ),
    ("remove-last", ONE_LINE_JOBS, ("remove", "b"), "},\n" + ONE_LINE_JOBS.splitlines()[4], "}"),
    (
        "remove-only",
        FOUR_SPACE_BLOCKS,
        ("remove", "a"),
        FOUR_SPACE_BLOCKS[FOUR_SPACE_BLOCKS.index("[") : FOUR_SPACE_BLOCKS.index("]") + 1],
        "[]",
    ),
    ("add-to-empty", EMPTY_JOBS, ADD, '"jobs": [],', '"jobs": [\n    ' + NEW + "\n  ],"),
    (
        "add-to-empty-spread",
        EMPTY_JOBS.replace("[]", "[\n  ]"),
        ADD,
        '"jobs": [\n  ],',
        '"jobs": [\n    ' + NEW + "\n  ],",
    ),
    (
        "add-to-empty-tabs",
        EMPTY_JOBS.replace("  ", "\t"),
        ADD,
        '"jobs": [],',
        '"jobs": [\n\t\t' + NEW + "\n\t],",
    ),
    (
        "add-to-empty-one-line",
        '{"settings": {"timezone": "UTC"}, "jobs": [], "x-owner": "ops"}\n',
        ADD,
        '"jobs": []',
        '"jobs": [' + NEW + "]",
    ),
    (
        "add-without-jobs",
        NO_JOBS,
        ADD,
        '"ops"\n',
        '"ops",\n    "jobs": [\n        ' + NEW + "\n    ]\n",
    ),
    (
        "add-without-jobs-one-line",
        '{"settings": {"timezone": "UTC"}}\n',
        ADD,
        '"UTC"}}',
        '"UTC"}, "jobs": [' + NEW + "]}",
    ),
    (
        "commented-add",
        COMMENTED,
        ADD,
        '"15m"}\n',
        '"15m"},\n    ' + NEW + "\n",
    ),
    (
        "commented-remove-middle",
        COMMENTED,
        ("remove", "b"),
        COMMENTED.splitlines()[5].strip() + "\n\n    ",
        "",
    ),
    (
        "commented-remove-last",
        COMMENTED,
        ("remove", "c"),
        "},\n\n" + COMMENTED.splitlines()[7],
        "}",
    ),
    ("commented-disable", COMMENTED, ("disable", "b"), '"02:00"}', '"02:00", "enabled": false}'),
    (
        "unicode-add",
        UNICODE,
        ("add", "new", "echo héllo ☃ 💾", "--type", "daily", "--time", "03:00"),
        '"02:00"\n    }\n',
        '"02:00"\n    },\n    {\n      "name": "new",\n      "command": "echo héllo ☃ 💾",\n'
        '      "schedule_type": "daily",\n      "schedule_time": "03:00",\n'
        '      "enabled": true\n    }\n',
    ),
    ("unicode-disable", UNICODE, ("disable", "a"), '"1h"},', '"1h", "enabled": false},'),
    (
        "unicode-disable-block",
        UNICODE,
        ("disable", "b"),
        '"02:00"\n',
        '"02:00",\n      "enabled": false\n',
    ),
    ("mixed-add", MIXED, ADD, '"04:00"}\n', '"04:00"},\n    ' + NEW + "\n"),
    ("mixed-disable-compact", MIXED, ("disable", "b"), '"02:00"}', '"02:00", "enabled": false}'),
    ("mixed-disable-block", MIXED, ("disable", "c"), '"15m"\n', '"15m",\n      "enabled": false\n'),
    ("mixed-remove-compact", MIXED, ("remove", "b"), MIXED.splitlines()[8].strip() + "\n    ", ""),
    (
        "mixed-remove-last",
        MIXED,
        ("remove", "d"),
        "},\n" + MIXED.splitlines()[15],
        "}",
    ),
]


def crlf(text: str) -> str:
    return text.replace("\n", "\r\n")


ENCODINGS = {
    "lf": lambda text: text.encode(),
    "crlf": lambda text: crlf(text).encode(),
    "cr": lambda text: text.replace("\n", "\r").encode(),  # JSON takes a lone CR as whitespace
    "bom": lambda text: BOM + text.encode(),
    "bom-crlf": lambda text: BOM + crlf(text).encode(),
}


def edited_bytes(tmp_path: Path, data: bytes, *argv: str) -> bytes:
    config = tmp_path / "config" / "batch_config.json"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_bytes(data)
    result = run_cli(tmp_path, *argv)
    assert result.returncode == 0, result.stderr
    return config.read_bytes()


def expected_text(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"the case's old text must occur once: {old!r}"
    return text.replace(old, new)


@pytest.mark.parametrize("encoding", ["lf", "bom-crlf"])
@pytest.mark.parametrize(
    ("text", "argv", "old", "new"), [case[1:] for case in CASES], ids=[case[0] for case in CASES]
)
def test_an_edit_changes_only_the_expected_bytes(
    tmp_path: Path, encoding: str, text: str, argv: tuple[str, ...], old: str, new: str
) -> None:
    encode = ENCODINGS[encoding]
    after = edited_bytes(tmp_path, encode(text), *argv)
    assert after == encode(expected_text(text, old, new))


@pytest.mark.parametrize("encoding", ["crlf", "cr", "bom"])
@pytest.mark.parametrize("case", ["add-block", "add-to-empty", "disable-block", "remove-last"])
def test_line_endings_and_the_byte_order_mark_are_kept_apart(
    tmp_path: Path, encoding: str, case: str
) -> None:
    _, text, argv, old, new = next(c for c in CASES if c[0] == case)
    encode = ENCODINGS[encoding]
    after = edited_bytes(tmp_path, encode(text), *argv)
    assert after == encode(expected_text(text, old, new))


def test_the_full_rewrite_keeps_the_line_endings_and_the_byte_order_mark(tmp_path: Path) -> None:
    # An empty top-level object has no key to take a style from: the whole file is written.
    after = edited_bytes(tmp_path, BOM + b"{}\r\n", *ADD)
    assert after.startswith(BOM + b"{\r\n")
    assert b"\n" not in after.replace(b"\r\n", b"")
    assert json.loads(after[len(BOM) :]) == {"jobs": [json.loads(NEW)]}


def test_a_job_name_that_is_not_ascii_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    config = tmp_path / "config" / "batch_config.json"
    config.parent.mkdir(parents=True)
    data = BOM + crlf(UNICODE).encode()
    config.write_bytes(data)
    result = run_cli(tmp_path, "add", "café", "echo x", "--type", "daily", "--time", "03:00")
    assert result.returncode == 78 and "Traceback" not in result.stderr
    assert "'café' refused" in result.stderr and "not a valid job name" in result.stderr
    assert config.read_bytes() == data
