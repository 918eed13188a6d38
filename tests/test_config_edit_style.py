"""The editing commands keep the file's style: only the edited job's text changes (issue 17.10).

Run through the CLI as the user ran it (`add`, `remove`, `disable`, `enable`), on files in the
styles people write by hand: one-line jobs, 4-space blocks, tabs, a compact one-liner.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli

ONE_LINE_JOBS = """{
  "settings": {"timezone": "UTC"},
  "jobs": [
    {"name": "a", "command": "echo a", "schedule_type": "interval", "schedule_time": "1h"},
    {"name": "b", "command": "echo b", "schedule_type": "daily", "schedule_time": "02:00", "enabled": true},
    {"name": "c", "command": "echo c", "schedule_type": "interval", "schedule_time": "15m"}
  ]
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

ADD = ("add", "new", "echo new", "--type", "daily", "--time", "03:00")


def edited(tmp_path: Path, text: str, *argv: str) -> str:
    config = tmp_path / "config" / "batch_config.json"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(text)
    result = run_cli(tmp_path, *argv)
    assert result.returncode == 0, result.stderr
    new = config.read_text()
    json.loads(new)  # still JSON
    return new


def changed_lines(old: str, new: str) -> tuple[list[str], list[str]]:
    """The lines only in ``old`` and the lines only in ``new``, in order."""
    old_lines, new_lines = old.splitlines(), new.splitlines()
    return [x for x in old_lines if x not in new_lines], [
        x for x in new_lines if x not in old_lines
    ]


def test_add_to_one_line_jobs_adds_one_line(tmp_path: Path) -> None:
    new = edited(tmp_path, ONE_LINE_JOBS, *ADD)
    gone, added = changed_lines(ONE_LINE_JOBS, new)
    # The last job gains the comma that separates it from the new one; nothing else moves.
    assert gone == [ONE_LINE_JOBS.splitlines()[5]] and added[0] == gone[0] + ","
    assert len(added) == 2 and added[1].startswith('    {"name": "new", "command": "echo new"')
    assert new.replace(added[1] + "\n", "").replace(added[0], gone[0]) == ONE_LINE_JOBS


def test_add_to_four_space_blocks_writes_a_four_space_block(tmp_path: Path) -> None:
    new = edited(tmp_path, FOUR_SPACE_BLOCKS, *ADD)
    assert (
        '        },\n        {\n            "name": "new",\n            "command": "echo new",'
        in new
    )
    assert new.endswith('        }\n    ],\n    "x-owner": "ops"\n}\n')
    assert new.startswith(FOUR_SPACE_BLOCKS.split("        }")[0])


def test_add_to_tab_indented_blocks_uses_tabs(tmp_path: Path) -> None:
    tabs = FOUR_SPACE_BLOCKS.replace("    ", "\t")
    new = edited(tmp_path, tabs, *ADD)
    assert '\t\t},\n\t\t{\n\t\t\t"name": "new",\n' in new


@pytest.mark.parametrize("name", ["a", "b", "c"])
def test_remove_takes_out_that_line_only(tmp_path: Path, name: str) -> None:
    new = edited(tmp_path, ONE_LINE_JOBS, "remove", name)
    gone, added = changed_lines(ONE_LINE_JOBS, new)
    assert [json.loads(line.rstrip(","))["name"] for line in gone][-1] == name
    if name == "c":  # the one before loses its comma
        assert added == [gone[0].rstrip(",")]
    else:
        assert added == []


def test_remove_of_the_only_job_leaves_an_empty_list(tmp_path: Path) -> None:
    new = edited(tmp_path, FOUR_SPACE_BLOCKS, "remove", "a")
    assert new == '{\n    "jobs": [],\n    "x-owner": "ops"\n}\n'


def test_disable_changes_one_value_or_adds_one_key_in_the_jobs_style(tmp_path: Path) -> None:
    new = edited(tmp_path, ONE_LINE_JOBS, "disable", "b")
    assert new == ONE_LINE_JOBS.replace('"02:00", "enabled": true}', '"02:00", "enabled": false}')
    new = edited(tmp_path, ONE_LINE_JOBS, "disable", "a")
    assert new == ONE_LINE_JOBS.replace('"1h"},', '"1h", "enabled": false},')
    new = edited(tmp_path, FOUR_SPACE_BLOCKS, "disable", "a")
    assert new == FOUR_SPACE_BLOCKS.replace('"1h"\n', '"1h",\n            "enabled": false\n')


def test_a_compact_one_line_file_stays_one_line(tmp_path: Path) -> None:
    compact = (
        '{"jobs": [{"name": "a", "command": "true", "schedule_type": "interval", '
        '"schedule_time": "1h"}]}\n'
    )
    new = edited(tmp_path, compact, *ADD)
    assert new.count("\n") == 1 and new.startswith(compact[:-3] + ", {")
