"""ClusterWatch tells a cluster whose GCS stopped answering from one that answers, within
its grace time (a listening socket on loopback stands for the GCS; no Ray here)."""

from __future__ import annotations

import socket
import time

from shipyard.flow.ray_watch import ClusterWatch
from support.waiting import wait_for


def _listener() -> tuple[socket.socket, str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    return sock, f"127.0.0.1:{sock.getsockname()[1]}"


def test_a_gcs_that_answers_is_not_lost_and_one_that_stops_is_within_the_grace() -> None:
    gcs, address = _listener()
    watch = ClusterWatch(address, "10.0.0.5:6379", grace=0.6, every=0.1)
    try:
        time.sleep(0.5)
        assert not watch.lost and watch.answers()
        assert watch.confirm_lost() is False  # answers at once: one node died, not all
        gcs.close()
        stopped = time.monotonic()
        wait_for(lambda: watch.lost, what="the watch to call the cluster lost", timeout=5)
        assert 0.5 <= time.monotonic() - stopped < 3
        assert watch.message().startswith("the Ray cluster at 10.0.0.5:6379 stopped answering")
        assert address in watch.message()
    finally:
        watch.stop()
        gcs.close()


def test_confirm_lost_probes_for_the_grace_time_then_says_gone() -> None:
    gcs, address = _listener()
    gcs.close()  # nothing listens there any more
    watch = ClusterWatch(address, grace=0.5, every=0.1)
    try:
        began = time.monotonic()
        assert watch.confirm_lost() is True and watch.lost
        assert time.monotonic() - began >= 0.45
    finally:
        watch.stop()
