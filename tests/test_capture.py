"""Bounded output capture: the in-memory tails and the run log's head, marker and tail."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from batch_runner.execution.capture import (
    OutputCapture,
    RunLog,
    TailBuffer,
    cut_marker,
    decode_tail,
)


def stream(size: int, seed: int = 1) -> bytes:
    """Distinct bytes everywhere, so a misplaced window cannot pass for the right one."""
    return random.Random(seed).randbytes(size)


def feed_in_chunks(sink: RunLog | TailBuffer, data: bytes, seed: int = 2) -> None:
    rng, pos = random.Random(seed), 0
    while pos < len(data):
        size = rng.choice([1, 7, 100, 4096, 65536])
        chunk = data[pos : pos + size]
        if isinstance(sink, RunLog):
            sink.write(chunk)
        else:
            sink.append(chunk)
        pos += size


def expected_log(data: bytes, max_bytes: int) -> bytes:
    head, tail = max_bytes // 2, max_bytes - max_bytes // 2
    if len(data) <= max_bytes:
        return data
    return data[:head] + cut_marker(len(data) - head - tail) + data[len(data) - tail :]


@pytest.mark.parametrize("limit", [0, 1, 10, 1000])
def test_tail_buffer_keeps_exactly_the_last_bytes(limit: int) -> None:
    data = stream(50_000)
    tail = TailBuffer(limit)
    feed_in_chunks(tail, data)
    assert tail.getvalue() == data[len(data) - limit :]
    assert tail.total == len(data)
    assert tail.dropped == len(data) - limit


def test_tail_buffer_short_stream_is_kept_whole() -> None:
    tail = TailBuffer(100)
    tail.append(b"abc")
    tail.append(b"def")
    assert (tail.getvalue(), tail.dropped) == (b"abcdef", 0)


@pytest.mark.parametrize(
    ("size", "max_bytes"),
    [
        (0, 100),
        (100, 100),
        (101, 100),
        (5000, 100),
        (5000, 101),
        (300_000, 1000),
        (3_500_000, 1000),  # several compactions while running (1 MiB of slack each)
        (2_000_000, 1_500_000),  # no compaction while running, one at close
        (1000, 0),
    ],
)
def test_run_log_ends_as_head_marker_and_true_tail(
    tmp_path: Path, size: int, max_bytes: int
) -> None:
    data = stream(size)
    path = tmp_path / "deep" / "dir" / "run.log"
    run_log = RunLog(path, max_bytes)
    feed_in_chunks(run_log, data)
    run_log.close()
    assert path.read_bytes() == expected_log(data, max_bytes)
    assert run_log.cut == max(size - max_bytes, 0)


def test_run_log_stays_bounded_while_running(tmp_path: Path) -> None:
    path, data = tmp_path / "run.log", stream(6_000_000)
    run_log = RunLog(path, 2000)
    largest = 0
    for pos in range(0, len(data), 65536):
        run_log.write(data[pos : pos + 65536])
        largest = max(largest, path.stat().st_size)
        assert path.read_bytes()[:1000] == data[:1000]  # the head never moves
    assert largest < 1000 + 100 + 1000 + 1024 * 1024 + 65536  # head, marker, tail, slack, chunk
    text = path.read_bytes()
    assert b"[batch_runner: " in text and b" bytes cut here]" in text
    run_log.close()
    assert path.read_bytes() == expected_log(data, 2000)


def test_small_cut_where_the_marker_is_longer_than_the_cut(tmp_path: Path) -> None:
    """The tail then moves up, not down, in the file: the copy must run backwards."""
    data = stream(100_003)
    run_log = RunLog(tmp_path / "run.log", 100_000)
    run_log.write(data)
    run_log.close()
    assert (tmp_path / "run.log").read_bytes() == expected_log(data, 100_000)


def test_an_unwritable_run_log_does_not_stop_the_capture(tmp_path: Path, caplog) -> None:
    (tmp_path / "file").write_text("not a directory")
    capture = OutputCapture(tmp_path / "file" / "run.log", 1000, 5)
    capture.feed(b"hello world")
    capture.close()
    assert capture.output() == "world"
    assert "cannot write run log" in caplog.text


def test_output_is_stdout_and_the_run_log_has_both_streams_marked(tmp_path: Path) -> None:
    """Issue 17.15: ``output`` is standard output, as in the original; the run log keeps both
    streams in the order they came, marked where they change over."""
    with OutputCapture(tmp_path / "run.log", 1000, 8, stderr_tail_bytes=4) as capture:
        capture.feed(b"out1\n")
        capture.feed(b"err1\n", stderr=True)
        capture.feed(b"out2 no newline")
        capture.feed(b"err2\n", stderr=True)
    assert capture.output() == " newline"  # the last 8 bytes of stdout only
    assert capture.stderr_tail() == "rr2"
    assert capture.truncated is True
    assert (tmp_path / "run.log").read_bytes() == (
        b"out1\n[batch_runner: stderr]\nerr1\n[batch_runner: stdout]\nout2 no newline\n"
        b"[batch_runner: stderr]\nerr2\n"
    )


def test_a_job_that_only_warns_has_empty_output(tmp_path: Path) -> None:
    with OutputCapture(tmp_path / "run.log", 1000, 100) as capture:
        capture.feed(b"warn\n", stderr=True)
    assert capture.output() == "" and capture.stderr_tail() == "warn"
    assert capture.truncated is False
    assert (tmp_path / "run.log").read_bytes() == b"[batch_runner: stderr]\nwarn\n"


def test_truncated_is_false_when_everything_fits(tmp_path: Path) -> None:
    with OutputCapture(tmp_path / "run.log", 100, 100) as capture:
        capture.feed(b"short")
    assert capture.truncated is False


def test_truncated_when_only_the_run_log_was_cut(tmp_path: Path) -> None:
    with OutputCapture(tmp_path / "run.log", 10, 100) as capture:
        capture.feed(b"x" * 50)
    assert capture.truncated is True


def test_decoding_drops_a_character_split_by_the_cut_and_replaces_garbage() -> None:
    euro = "€".encode()  # three bytes
    assert decode_tail(euro[1:] + b"ok", cut=True) == "ok"
    assert decode_tail(euro[1:] + b"ok", cut=False) == "\ufffd\ufffdok"
    assert decode_tail(b"\xff\xfeok", cut=True) == "\ufffd\ufffdok"
