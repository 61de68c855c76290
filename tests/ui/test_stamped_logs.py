"""The UI shows a task's logs without the stamps that start their lines (the time each was
written, for ``shipyard logs``): read whole, by tail, or followed by offset in any size of
chunk (a stamp cut by a chunk's end is read whole by the next)."""

from __future__ import annotations

from typing import Any

from shipyard.store.loglines import stamp
from shipyard.store.records import TaskStatus
from shipyard.ui import logs

LINES = ["first", "second é", "", "a much longer third line " * 3, "last"]
STAMPED = "".join(f"{stamp(1_700_000_000_000_000_000 + i)}{line}\n" for i, line in enumerate(LINES))
PLAIN = "".join(f"{line}\n" for line in LINES)


def test_follow_and_tail_strip_stamps_at_any_chunk_size(fake: Any) -> None:
    run_id = fake.run()
    task_id = fake.task(run_id, "start", status=None, stdout=STAMPED)
    task = fake.meta.get_task(task_id)
    attempt = fake.meta.list_attempts(task_id)[0]
    size = len(STAMPED.encode())
    for limit in range(20, size + 1):
        parts, offset = [], 0
        while True:
            chunk = logs.follow(fake.blobs, fake.home, task, attempt, "stdout", offset, limit)
            parts.append(chunk.text)
            assert chunk.offset > offset or not chunk.more
            offset = chunk.offset
            if not chunk.more:
                break
        assert "".join(parts) == PLAIN, limit
        assert offset == size
    whole = logs.tail(fake.blobs, fake.home, task, attempt, "stdout")
    assert whole.text == PLAIN and not whole.cut
    for limit in range(1, size):  # the tail may start inside a stamp
        cut = logs.tail(fake.blobs, fake.home, task, attempt, "stdout", limit=limit)
        assert "\x1e" not in cut.text and "\x1f" not in cut.text
        assert PLAIN.endswith(cut.text.split("\n", 1)[-1])

    key = fake.put_bytes(STAMPED.encode())
    fake.meta.finish_attempt(task_id, 0, status=TaskStatus.SUCCEEDED, stdout_key=key)
    attempt = fake.meta.list_attempts(task_id)[0]
    ended = logs.follow(fake.blobs, fake.home, task, attempt, "stdout", 0)
    assert ended.text == PLAIN and ended.done
    fake.finish(run_id)
