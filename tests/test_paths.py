"""Where things are: relative config paths resolve against the root as pathlib would join them."""

from __future__ import annotations

from pathlib import Path

import pytest

from batch_runner.paths import resolve_under_root


@pytest.mark.parametrize(
    ("root", "value"),
    [
        ("/srv/app", "logs"),
        ("/srv/app", "./logs/"),
        ("/srv/app", "logs//runs/."),
        ("/srv/app", "/var/log//batch/"),
        ("/srv/app", "../shared/logs"),
        ("/srv/app/", "."),
        ("/", "."),
        ("relative/root", "x"),
    ],
)
def test_paths_under_the_root_read_as_pathlib_writes_them(root: str, value: str) -> None:
    assert resolve_under_root(root, value) == str(Path(root) / value)


def test_dot_dot_is_left_to_the_kernel_for_a_root_behind_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "releases" / "v3").mkdir(parents=True)
    (tmp_path / "current").symlink_to(tmp_path / "releases" / "v3")
    resolved = resolve_under_root(str(tmp_path / "current"), "../logs")
    assert resolved == f"{tmp_path}/current/../logs"
    assert Path(resolved).resolve() == tmp_path / "releases" / "logs"
