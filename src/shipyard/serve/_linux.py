"""The few Linux system calls worker isolation needs, through ``ctypes`` (Python 3.11 has no
``os.unshare``): ``unshare``, ``mount``, ``prctl`` and ``capset``; and glibc's
``malloc_trim``, which the host and its workers call after they freed large request bodies.

Each raises ``OSError`` naming the call and its arguments on failure. Nothing here decides
what to mount; :mod:`shipyard.serve.isolation` does.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
from pathlib import Path

CLONE_NEWNS = 0x00020000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_NOSYMFOLLOW = 256
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24

#: per-mount options as /proc/self/mountinfo spells them -> the flag that keeps them on remount
MOUNT_OPTIONS = {
    "ro": MS_RDONLY,
    "nosuid": MS_NOSUID,
    "nodev": MS_NODEV,
    "noexec": MS_NOEXEC,
    "noatime": MS_NOATIME,
    "nodiratime": MS_NODIRATIME,
    "relatime": MS_RELATIME,
    "nosymfollow": MS_NOSYMFOLLOW,
}

PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_SECUREBITS = 28
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4

#: exec never grants root capabilities, setuid never keeps or restores them, ambient
#: capabilities cannot be raised - each bit locked, so no later call can undo it
SECURE_BITS = 0x01 | 0x02 | 0x04 | 0x08 | 0x20 | 0x40 | 0x80

_CAPABILITY_VERSION_3 = 0x20080522

_libc: ctypes.CDLL | None = None


def _c() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        _libc.mount.argtypes = [
            ctypes.c_char_p,
            ctypes.c_char_p,
            ctypes.c_char_p,
            ctypes.c_ulong,
            ctypes.c_char_p,
        ]
        _libc.prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
    return _libc


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def malloc_trim() -> bool:
    """glibc's ``malloc_trim(0)``: return the free memory of every malloc arena to the system
    (glibc keeps freed heap memory for reuse, so a process that once held a few hundred MB
    of request bodies would keep them resident). True if memory was released; False too
    where there is no glibc (musl, macOS), where it does nothing."""
    try:
        trim = _c().malloc_trim
    except (OSError, AttributeError):
        return False
    return bool(trim(0))


def unshare(flags: int) -> None:
    """``unshare(2)``: leave the namespaces named by ``flags`` for new private copies."""
    _check(_c().unshare(flags), f"unshare({flags:#x})")


def mount(
    source: str | None,
    target: str | Path,
    fstype: str | None = None,
    flags: int = 0,
    data: str | None = None,
) -> None:
    """``mount(2)``."""

    def raw(text: str | Path | None) -> bytes | None:
        return None if text is None else os.fsencode(text)

    _check(
        _c().mount(raw(source), raw(target), raw(fstype), flags, raw(data)),
        f"mount({source!r}, {str(target)!r}, {fstype!r}, {flags:#x}, {data!r})",
    )


def prctl(option: int, arg: int = 0) -> None:
    """``prctl(2)`` with one argument (the rest zero)."""
    _check(_c().prctl(option, arg, 0, 0, 0), f"prctl({option}, {arg})")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def clear_capabilities() -> None:
    """``capset(2)``: empty effective, permitted and inheritable sets for this thread."""
    header = _CapHeader(_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    _check(_c().capset(ctypes.byref(header), data), "capset(all empty)")


def last_capability() -> int:
    """The highest capability number this kernel knows."""
    try:
        return int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    except (OSError, ValueError):
        return 40  # CAP_CHECKPOINT_RESTORE, Linux 5.9


def process_status() -> dict[str, str]:
    """``/proc/self/status`` as a dict (``CapEff``, ``NoNewPrivs``, ...)."""
    status = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        status[name] = value.strip()
    return status


def mounts() -> list[tuple[str, str]]:
    """Every mount of this namespace: (mount point, per-mount options), parents first."""
    found = []
    for line in Path("/proc/self/mountinfo").read_bytes().splitlines():
        fields = line.split()
        # the kernel escapes space, tab, newline and backslash in paths as \ooo
        point = re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m[1], 8)]), fields[4])
        found.append((os.fsdecode(point), fields[5].decode()))
    return found


def option_flags(options: str) -> int:
    """The ``MS_*`` flags of a mountinfo per-mount option list, e.g. ``rw,nosuid,relatime``."""
    flags = 0
    for option in options.split(","):
        flags |= MOUNT_OPTIONS.get(option, 0)
    return flags
