"""The pure parts of ``--executor ray``'s failure handling and checks, without a cluster:
how a Ray exception and the post-mortem's evidence become a named cause, the last lines of
a log, the version comparison, the refusal of a store remote nodes cannot reach, and a
running attempt's log streamed through the blob store in numbered chunks."""

from __future__ import annotations

from pathlib import Path

from shipyard.flow import failures
from shipyard.flow.failures import Evidence, log_tail, ray_failure
from shipyard.flow.ray_checks import unreachable_store, version_mismatches
from shipyard.flow.ray_node import LogStreamer, live_key, memory_cgroup, node_spec
from shipyard.flow.task import TaskSpec
from shipyard.store.blobs import open_blob_store
from shipyard.store.loglines import stamp

CRASHED = ["WorkerCrashedError", "RayError", "Exception", "BaseException", "object"]
WORKER_TEXT = "The worker died unexpectedly while executing this task."
NODE_ID = "9e1a4323b7d0595c4acfbb447b19c337c99d0f6660e68db209e2f021"


def stamped(*lines: str, start: int = 1_000) -> str:
    return "".join(f"{stamp(start + i)}{line}\n" for i, line in enumerate(lines))


def test_a_crashed_worker_that_called_os_exit_says_so_with_the_task_and_the_log() -> None:
    evidence = Evidence(
        ray_task_id="abc123",
        pid=4242,
        node="n1 (127.0.0.1)",
        exit_code=3,
        stdout=stamped("one", "two"),
        stderr=stamped("warn", start=1_002),
    )
    error = ray_failure(CRASHED, WORKER_TEXT, evidence)
    assert error["type"] == failures.WORKER_CRASHED == "WorkerCrashed"
    first, *rest = error["message"].splitlines()
    assert first == (
        "the Ray worker running the task died (Ray task abc123, worker pid 4242, "
        "node n1 (127.0.0.1)): the step called os._exit(3)"
    )
    assert rest == ["the last lines of its log:", "  | one", "  | two", "  | warn"]


def test_an_oom_kill_in_the_cgroup_is_memory_killed_with_the_request_and_the_use() -> None:
    evidence = Evidence(
        ray_task_id="abc",
        request_mb=64,
        oom_kills=1,
        memory_limit=400 * 2**20,
        memory_peak=399 * 2**20,
        cgroup="/test/node",
    )
    error = ray_failure(CRASHED, WORKER_TEXT, evidence)
    assert error["type"] == failures.MEMORY_KILLED
    assert "its memory cgroup /test/node allows 400 MiB and reached 399 MiB" in error["message"]
    assert "@resources(memory=64)" in error["message"]
    assert error["message"].endswith("(the task wrote nothing to its log)")


def test_rays_own_memory_monitor_is_memory_killed_too() -> None:
    names = ["OutOfMemoryError", "RayError", "Exception"]
    text = "Task was killed due to the node running low on memory. Memory used 0.98GB / 1.00GB"
    error = ray_failure(names, text, Evidence(ray_task_id="t1"))
    assert error["type"] == failures.MEMORY_KILLED
    assert "Ray's memory monitor" in error["message"] and "0.98GB / 1.00GB" in error["message"]
    assert "no memory (@resources(memory=...) is not set)" in error["message"]


def test_a_dead_node_is_node_lost_naming_the_node_from_rays_message() -> None:
    names = ["NodeDiedError", "RayError", "Exception"]
    text = f"Task failed because the node it was running on is dead. node ID: {NODE_ID}. ..."
    error = ray_failure(names, text, Evidence(ray_task_id="t1", stdout=stamped("hello")))
    assert error["type"] == failures.NODE_LOST
    assert f"node {NODE_ID} (Ray task t1)" in error["message"]
    assert error["message"].endswith("  | hello")


def test_a_segfault_is_named_from_faulthandlers_report_and_its_frames_are_kept() -> None:
    dump = [
        "[2026-12-05 E 1] logging.cc:474: *** SIGSEGV received at time=1 on cpu 1 ***",
        "PC: @ 0x7f (unknown)",
        "Fatal Python error: Segmentation fault",
        "",
        "Thread 0x01 (most recent call first):",
        '  File "ray/threading.py", line 1 in wait',
        "Current thread 0x02 (most recent call first):",
        '  File "ctypes/__init__.py", line 519 in string_at',
        '  File "flow.py", line 17 in crash',
    ]
    evidence = Evidence(stdout=stamped("about to crash"), stderr="\n".join(dump) + "\n")
    error = ray_failure(CRASHED, WORKER_TEXT, evidence)
    assert error["type"] == failures.WORKER_CRASHED
    assert "it died of SIGSEGV" in error["message"]
    assert log_tail(evidence.stdout, evidence.stderr) == [
        "about to crash",
        "Fatal Python error: Segmentation fault",
        "Current thread 0x02 (most recent call first):",
        '  File "ctypes/__init__.py", line 519 in string_at',
        '  File "flow.py", line 17 in crash',
    ]


def test_an_unknown_exit_says_it_is_unknown_and_other_ray_errors_keep_their_name() -> None:
    error = ray_failure(CRASHED, WORKER_TEXT, Evidence())
    assert "its exit status is unknown (Ray does not report it)" in error["message"]
    other = ray_failure(["RuntimeEnvSetupError", "RayError"], "pip failed", Evidence())
    assert other["type"] == failures.RAY_FAILURE
    assert other["message"].startswith("Ray: RuntimeEnvSetupError: pip failed")
    assert set(failures.CAUSES) >= {"MemoryKilled", "NodeLost", "WorkerCrashed", "TimeoutError"}


def test_the_log_tail_keeps_the_last_lines_in_the_order_written() -> None:
    out = stamped(*(f"line {i}" for i in range(30)))
    err = f"{stamp(1_014)}between 14 and 15\n"  # written after line 14
    assert log_tail(out, err, lines=3) == ["line 27", "line 28", "line 29"]
    assert log_tail(out, err, lines=17)[:2] == ["line 14", "between 14 and 15"]
    assert log_tail("x" * 1000 + "\n", "") == ["x" * 300]


HERE = {"python": "3.11", "ray": "2.60.0", "shipyard": "0.1.0"}


def test_matching_versions_pass_and_a_mismatch_prints_both_sides_per_node() -> None:
    assert version_mismatches(HERE, {"n1": dict(HERE), "n2": dict(HERE)}) == ""
    found = version_mismatches(
        HERE,
        {
            "n1": dict(HERE),
            "n2": {**HERE, "python": "3.12"},
            "n3": {**HERE, "ray": "2.59.0", "shipyard": "0.0.9"},
            "n4": {"error": "no answer in 30 s"},
        },
    )
    assert found.splitlines() == [
        "  node n2: python 3.12  (this machine: python 3.11)",
        "  node n3: ray 2.59.0, shipyard 0.0.9  (this machine: ray 2.60.0, shipyard 0.1.0)",
        "  node n4: python ?, ray ?, shipyard ?  (this machine: python 3.11, ray 2.60.0, "
        "shipyard 0.1.0)",
    ]


def test_a_file_store_is_refused_with_the_fix_when_a_node_is_on_another_machine() -> None:
    here = {"127.0.0.1", "10.0.0.7"}
    why = unreachable_store("file:///home/me/.shipyard/blobs", ["10.0.0.7", "10.0.0.9"], here)
    assert "file:///home/me/.shipyard/blobs is a directory on this machine" in why
    assert "(10.0.0.9)" in why and "SHIPYARD_STORE_URL=s3://" in why
    # a cluster on this machine (loopback or one of its addresses) reaches it; s3 is shared
    assert unreachable_store("file:///b", ["127.0.0.1", "127.0.1.1", "10.0.0.7"], here) == ""
    assert unreachable_store("s3://bucket/runs", ["10.0.0.9"], here) == ""


def spec(tmp_path: Path) -> TaskSpec:
    return TaskSpec(
        flow_name="F",
        run_id=1,
        task_id=2,
        step_name="start",
        attempt=0,
        store_url=f"file://{tmp_path / 'blobs'}",
        inputs=[],
        param_names=[],
        log_dir=str(tmp_path / "logs" / "start.0"),
    )


def test_a_running_attempts_log_is_streamed_as_numbered_chunks(tmp_path: Path) -> None:
    task = spec(tmp_path)
    node = tmp_path / "node"
    node.mkdir()
    local = node_spec(task, node)
    store = open_blob_store(task.store_url)
    streamer = LogStreamer(store, task, local, interval=60)
    local.path("out").write_text("first\n")
    streamer.flush()
    with local.path("out").open("a") as handle:
        handle.write("second\n")
    local.path("err").write_text("oops\n")
    streamer.flush()
    streamer.flush()  # nothing new: no chunk
    assert store.get(live_key(task, "out", 0)) == b"first\n"
    assert store.get(live_key(task, "out", 1)) == b"second\n"
    assert store.get(live_key(task, "err", 0)) == b"oops\n"
    assert not store.exists(live_key(task, "out", 2))


def test_the_memory_cgroup_of_this_process_is_read() -> None:
    found = memory_cgroup()
    assert set(found) == {"cgroup", "limit", "peak", "oom_kills"}
    assert isinstance(found["oom_kills"], int) and found["oom_kills"] >= 0
