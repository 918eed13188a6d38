"""The lazy loggers: nothing emitted at or above the threshold is ever dropped."""

from __future__ import annotations

import logging
import threading
import time

from fault_helpers import restore_logging  # noqa: F401  (a fixture)

from batch_runner import logs


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_threads_logging_while_the_handlers_are_installed_lose_nothing(
    restore_logging: None,  # noqa: F811
) -> None:
    collect = _Collect()

    def configure() -> None:
        time.sleep(0.1)  # the scheduler's threads start logging while this is under way
        logger = logging.getLogger("batch_runner")
        logger.handlers[:] = [collect]
        logger.setLevel(logging.INFO)
        logger.propagate = False

    logs.set_up("info", configure)
    start = threading.Barrier(8)

    def emit(index: int) -> None:
        start.wait()
        logs.get_logger().info("line %d", index)

    threads = [threading.Thread(target=emit, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(collect.messages) == sorted(f"line {i}" for i in range(8))


def test_a_control_character_in_a_message_cannot_forge_a_log_line() -> None:
    """A label stored before labels were checked (or put into the database by hand) holds a
    line break: the log shows it as an escape, one event per line."""
    import logging

    from batch_runner.cli.logsetup import _Formatter

    record = logging.LogRecord(
        "batch_runner", logging.INFO, __file__, 1, "start %s", ("x\n2026 INFO forged",), None
    )
    line = _Formatter(colour=False).format(record)
    assert "\n" not in line and line.endswith("INFO start x\\n2026 INFO forged")
