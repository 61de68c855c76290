"""What ``--executor ray`` checks before the first task, as pure functions of what it
found: every node runs the same Python (major.minor), Ray and shipyard as this process
(:func:`version_mismatches`), and every node can reach the run's blob store
(:func:`unreachable_store`: a ``file://`` store is a directory on this machine, so every
node must be on this machine too).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Mapping

#: the versions compared (a node's and this process's)
COMPARED = ("python", "ray", "shipyard")


def version_mismatches(here: Mapping[str, str], nodes: Mapping[str, Mapping[str, str]]) -> str:
    """Empty when every node (label -> its versions) matches ``here``; else one line per
    node that differs, both sides printed."""
    lines = []
    for label, theirs in sorted(nodes.items()):
        differ = [name for name in COMPARED if theirs.get(name) != here.get(name)]
        if differ:
            mine = ", ".join(f"{name} {here.get(name, '?')}" for name in differ)
            other = ", ".join(f"{name} {theirs.get(name, '?')}" for name in differ)
            lines.append(f"  node {label}: {other}  (this machine: {mine})")
    return "\n".join(lines)


def local_addresses() -> set[str]:
    """This machine's addresses (every interface, when psutil can say; else its name's)."""
    found = {"127.0.0.1", "::1"}
    try:
        import psutil

        for addrs in psutil.net_if_addrs().values():
            found.update(a.address.split("%")[0] for a in addrs if a.family in _INET)
    except Exception:  # noqa: BLE001 - fall back to the host name's addresses
        pass
    try:
        found.update(socket.gethostbyname_ex(socket.gethostname())[2])
    except OSError:
        pass
    return found


_INET = (socket.AF_INET, socket.AF_INET6)


def _is_here(address: str, here: set[str]) -> bool:
    try:
        if ipaddress.ip_address(address).is_loopback:
            return True
    except ValueError:
        pass
    return address in here


def unreachable_store(store_url: str, node_addresses: Iterable[str], here: set[str]) -> str:
    """Empty when every node can reach the blob store at ``store_url``; else why not and
    the fix. ``here``: this machine's addresses (:func:`local_addresses`)."""
    if not store_url.startswith("file://"):
        return ""  # s3:// (or another shared store): every node reaches what we reach
    elsewhere = sorted({a for a in node_addresses if not _is_here(a, here)})
    if not elsewhere:
        return ""
    return (
        f"the blob store {store_url} is a directory on this machine, but the Ray cluster has "
        f"nodes on other machines ({', '.join(elsewhere)}) that cannot read or write it; "
        "use a store every node reaches: set SHIPYARD_STORE_URL=s3://BUCKET/PREFIX (or "
        "store_url in SHIPYARD_HOME/config.yaml) on this machine, or run against a Ray "
        "cluster on this machine"
    )


__all__ = ["COMPARED", "local_addresses", "unreachable_store", "version_mismatches"]
