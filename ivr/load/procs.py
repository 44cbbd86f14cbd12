"""Peak memory of the processes in a run: this one, the ledger, and the broker (Linux ``/proc``).

This process reads its own peak from ``getrusage``; another process's peak is ``VmHWM`` in
``/proc/<pid>/status``, which only lives as long as the process, so it is read before stopping
it. The broker's pid is found from the port it listens on, which works for the private broker and
for a local one given by URL alike; on another host, or without ``/proc``, the answer is ``None``.
"""

from __future__ import annotations

import resource
from pathlib import Path
from typing import Final

__all__ = ["listener_pid", "peak_rss_mb", "vm_hwm_mb"]

_PROC: Final = Path("/proc")
_TCP_LISTEN: Final = "0A"
_LOOPBACK_HEX: Final = {"127.0.0.1": "0100007F", "0.0.0.0": "00000000"}  # noqa: S104 - matched, never bound
_MAX_PIDS: Final = 100_000


def peak_rss_mb() -> float:
    """The peak resident set size of the calling process, in MB."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KB on Linux


def vm_hwm_mb(pid: int | None) -> float | None:
    """Process ``pid``'s peak resident set size (``VmHWM``), in MB, or ``None`` if unreadable."""
    if pid is None:
        return None
    try:
        status = (_PROC / str(pid) / "status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None


def _listening_inodes(host: str, port: int) -> set[str]:
    wanted = {f"{_LOOPBACK_HEX.get(host, '')}:{port:04X}", f"00000000:{port:04X}"}
    try:
        lines = (_PROC / "net" / "tcp").read_text().splitlines()[1:]
    except OSError:
        return set()
    inodes: set[str] = set()
    for line in lines:
        fields = line.split()
        if len(fields) > 9 and fields[1] in wanted and fields[3] == _TCP_LISTEN:  # noqa: PLR2004 - /proc/net/tcp columns
            inodes.add(fields[9])
    return inodes


def listener_pid(host: str, port: int) -> int | None:
    """The pid of the local process listening on ``host:port`` (loopback or any), if it can be seen."""
    inodes = _listening_inodes(host, port)
    if not inodes:
        return None
    sockets = {f"socket:[{inode}]" for inode in inodes}
    try:
        pids = [p for p in _PROC.iterdir() if p.name.isdigit()][:_MAX_PIDS]
    except OSError:
        return None
    for pid in pids:
        try:
            fds = list((pid / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if str(fd.readlink()) in sockets:
                    return int(pid.name)
            except OSError:
                continue
    return None
