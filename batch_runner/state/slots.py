"""Lane slots: a lane of width w is w flock files, and a run runs while its runner holds one.

The kernel caps a lane at w holders across every process on the log dir and frees a dead
holder's slot, even after SIGKILL: one lock gives both the capacity and the liveness that
recovery needs (a run ``running`` in a slot nobody holds has lost its runner).
"""

from __future__ import annotations

from batch_runner.state.locks import HEADER_WIDTH, FileLock

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from batch_runner.state.layout import LogLayout


class Slot(FileLock):
    """Slot ``index`` of ``lane``: a FileLock that knows where it belongs."""

    def __init__(self, layout: LogLayout, lane: str, index: int) -> None:
        super().__init__(layout.slot_lock(lane, index))
        self.lane = lane
        self.index = index
        self._notes_written = 0

    def __repr__(self) -> str:
        return f"Slot({self.lane}.{self.index})"

    def note_start(self, run_id: str, attempt: int) -> bool:
        """Say in the lock file, before a reserved run is spawned, that it starts: its row
        says so only later (``runs.handoff``), and should the holder die first, recovery
        knows it may have run. One write into the page cache, where creating a file costs
        this file system up to a millisecond. The last ``NOTES`` starts are kept, in turn:
        the rows of as many runs may still say ``reserved`` after their start; the notes
        outlive the holder (even SIGKILL) until the next holder's own."""
        place = HEADER_WIDTH + self._notes_written % NOTES * _NOTE_WIDTH
        if not self.write_at(_start_note(run_id, attempt), place):
            return False
        self._notes_written += 1
        return True


# How many starts a slot's lock file keeps: more than a slot's runner ever has started while
# their rows still say reserved (runs.handoff.AHEAD, and the one running).
NOTES = 12
# Each note after the lock file's header: "<attempt> <run id>", padded, so that a note replaces
# the one before it in its place whole.
_NOTE_WIDTH = 128


def _start_note(run_id: str, attempt: int) -> bytes:
    return f"{attempt} {run_id}"[: _NOTE_WIDTH - 1].ljust(_NOTE_WIDTH - 1).encode() + b"\n"


def noted_start(layout: LogLayout, lane: str, index: int, run_id: str, attempt: int) -> bool:
    """Whether slot ``index`` of ``lane`` notes that ``run_id``'s ``attempt`` started
    (``Slot.note_start``): reliable for a holder of the slot (recovery), or under the store's
    write lock, under which its holder notes a start."""
    import os

    try:
        fd = os.open(layout.slot_lock(lane, index), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        notes = os.pread(fd, NOTES * _NOTE_WIDTH, HEADER_WIDTH)
    finally:
        os.close(fd)
    return _start_note(run_id, attempt) in {
        notes[at : at + _NOTE_WIDTH] for at in range(0, len(notes), _NOTE_WIDTH)
    }


def try_any(layout: LogLayout, lane: str, width: int) -> Slot | None:
    """A free slot of ``lane``, taken at once (lowest index first); None when all are held."""
    for index in range(width):
        slot = Slot(layout, lane, index)
        if slot.acquire(wait=False):
            return slot
    return None


def slots_on_disk(layout: LogLayout) -> set[tuple[str, int]]:
    """(lane, index) of every slot lock file in the state folder, whatever the config says."""
    import os

    found: set[tuple[str, int]] = set()
    try:
        names = os.listdir(layout.state_dir)
    except OSError:
        return found
    for name in names:
        parts = name.split(".")
        if len(parts) == 4 and parts[0] == "lane" and parts[3] == "lock" and parts[2].isdigit():
            found.add((parts[1], int(parts[2])))
    return found
