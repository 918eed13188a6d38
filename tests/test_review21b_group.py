"""Review of issue 21 (outside, adversarial): the service's group commit. A change that the
database refuses for its own reason (a run id already taken: 3 random bytes per second, so a
collision about every two minutes at the 500 runs/s the service is built for) must fail alone,
not take the other runs of its group down with a 503."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from writergroups import queued_add, queued_behind, serving

from batch_runner.errors import StorageError
from batch_runner.runs import queue
from batch_runner.web.service import Service


@pytest.fixture
def service(tmp_path: Path) -> Any:
    yield from serving(tmp_path)


def test_a_run_id_collision_fails_that_run_alone_not_its_whole_group(service: Service) -> None:
    first = service.write_grouped(queued_add("first"))
    # The second "first" stands for the id new_run_id gave twice in one second.
    outcomes = queued_behind(
        service,
        lambda ctx: None,
        [
            queued_add("a"),
            queued_add("b"),
            queued_add("dup", run_id=first),
            queued_add("c"),
            queued_add("d"),
        ],
    )
    assert isinstance(outcomes[2], StorageError), outcomes
    others = outcomes[:2] + outcomes[3:]
    assert all(isinstance(o, str) for o in others), f"refused with the collision: {outcomes}"
    stored = service.reader().store
    assert all(stored.get_run(o) is not None for o in others)


def test_a_change_refused_for_its_own_values_does_not_refuse_those_queued_behind_it(
    service: Service,
) -> None:
    """The answer shared by the changes queued behind a refused one is for a state that
    cannot be written (locked, full, damaged), not for one change's own refusal."""
    first = service.write_grouped(queued_add("first"))
    outcomes = queued_behind(
        service, queued_add("dup", run_id=first), [queued_add("x"), queued_add("y")]
    )
    assert all(isinstance(o, str) for o in outcomes), f"refused with the one before: {outcomes}"


def test_queue_add_draws_another_id_when_the_one_drawn_is_taken(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = service.write_grouped(queued_add("first"))
    drawn = iter([taken, "20300101-000000-abcdef"])
    monkeypatch.setattr(queue, "new_run_id", lambda now: next(drawn))
    assert service.write_grouped(queued_add("second")) == "20300101-000000-abcdef"
