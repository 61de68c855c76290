"""The runtime's side of a Ray attempt and of the cluster: which nodes are alive and how
to name them, the check before the first task (:func:`check_cluster`), and the live log
of an attempt (:class:`Attempt`): the chunks its task streams to the blob store
(ray_node.py) appended to the attempt's live log file on this machine, completed when it
ends, then deleted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shipyard.flow import ray_node
from shipyard.flow.ray_checks import local_addresses, unreachable_store, version_mismatches
from shipyard.flow.ray_node import SUFFIXES, live_key
from shipyard.store.blobs import BlobNotFound, BlobStore

if TYPE_CHECKING:
    from shipyard.flow.task import TaskSpec

#: seconds to wait for the version probes and for a post-mortem
PROBE_SECONDS = 30.0
#: the longest wait between two looks for an attempt's next chunk
LOOK_MAX = 8.0


@dataclass
class Attempt:
    """A submitted attempt, as the executor follows it: its spec, when it started, and how
    many chunks of each stream of its live log are appended to the runtime's file."""

    spec: TaskSpec
    ref: Any
    started: float = field(default_factory=time.monotonic)
    chunks: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SUFFIXES, 0))
    #: when to look for its next chunk, and the wait after a look that found none (a task
    #: still queued in Ray streams nothing: its looks thin out, up to LOOK_MAX apart)
    next_look: float = field(default_factory=lambda: time.monotonic() + 1.0)
    wait: float = 1.0

    def complete(self, suffix: str, data: bytes) -> None:
        """The live file of ``suffix`` here made whole from the attempt's full log."""
        path = self.spec.path(suffix)
        have = path.stat().st_size if path.exists() else 0
        if len(data) > have:
            with path.open("ab") as handle:
                handle.write(data[have:])


def alive_nodes() -> list[dict[str, Any]]:
    """The nodes Ray lists as alive (``ray.nodes()``: NodeID, NodeManagerAddress, ...)."""
    import ray

    nodes: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]
    return [node for node in nodes if node.get("Alive")]


def node_label(node: dict[str, Any]) -> str:
    """``<id> (<address>, <custom resources>)``: which node, in words a user can match."""
    standard = ("CPU", "GPU", "memory", "object_store_memory")
    custom = sorted(
        name
        for name in node.get("Resources", {})
        if name not in standard and not name.startswith(("node:", "accelerator_type:"))
    )
    extra = f", resources {', '.join(custom)}" if custom else ""
    return f"{node['NodeID']} ({node.get('NodeManagerAddress', '?')}{extra})"


def append_chunks(store: BlobStore, attempt: Attempt) -> bool:
    """Append the live log's chunks not appended yet to the runtime's files; whether there
    were any."""
    before = sum(attempt.chunks.values())
    for suffix in SUFFIXES:
        while True:
            key = live_key(attempt.spec, suffix, attempt.chunks[suffix])
            try:
                data = store.get(key)
            except BlobNotFound:
                break
            with attempt.spec.path(suffix).open("ab") as handle:
                handle.write(data)
            attempt.chunks[suffix] += 1
    return sum(attempt.chunks.values()) > before


def drop_chunks(store: BlobStore, attempt: Attempt) -> None:
    """Delete the live log's chunks: the attempt's log is whole here now."""
    if time.monotonic() - attempt.started < ray_node.STREAM_SECONDS:
        return  # the task streams its first chunk a second after it started: none
    for suffix in SUFFIXES:
        number = 0
        while True:
            key = live_key(attempt.spec, suffix, number)
            if number >= attempt.chunks[suffix] and not store.exists(key):
                break
            store.delete(key)
            number += 1


def check_cluster(address: str, store_url: str) -> tuple[str, dict[str, dict[str, str]]]:
    """What is wrong with the cluster for this run (empty: nothing) — a node that cannot
    reach the store, or runs other versions — and each live node's versions."""
    import ray

    nodes = alive_nodes()
    why = unreachable_store(store_url, [n["NodeManagerAddress"] for n in nodes], local_addresses())
    if why:
        return why, {}
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    probe = ray.remote(ray_node.versions)
    refs = {
        node_label(node): probe.options(
            num_cpus=0,
            max_retries=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False),
        ).remote()
        for node in nodes
    }
    ready, _ = ray.wait(list(refs.values()), num_returns=len(refs), timeout=PROBE_SECONDS)
    found: dict[str, dict[str, str]] = {}
    for label, ref in refs.items():
        if ref not in ready:
            found[label] = {"error": f"no answer in {PROBE_SECONDS:g} s"}
            continue
        try:
            found[label] = ray.get(ref)
        except Exception as exc:  # noqa: BLE001
            names = {cls.__name__ for cls in type(exc).__mro__}
            if names & {"TaskUnschedulableError", "NodeDiedError"}:
                continue  # the node left the cluster: nothing will run there
            found[label] = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    mismatches = version_mismatches(ray_node.versions(), found)
    if not mismatches:
        return "", found
    return (
        f"the Ray cluster at {address} runs other versions than this machine; every "
        f"node needs the same Python (major.minor), Ray and shipyard:\n{mismatches}\n"
        "install the same versions here or on the nodes"
    ), found


__all__ = [
    "LOOK_MAX",
    "PROBE_SECONDS",
    "Attempt",
    "alive_nodes",
    "append_chunks",
    "check_cluster",
    "drop_chunks",
    "node_label",
]
