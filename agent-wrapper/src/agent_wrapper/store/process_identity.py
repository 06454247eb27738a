"""This process as the stores name it in what it holds (SQL claims and session leases,
the file store's temp files), and whether the process a name points to still runs.

A pid alone does not name a process: containers restart with the same hostname and,
often, the same pid (the wrapper is pid 7 in every start of its image), and pids are
reused. So a name carries the pid, the process's start time (clock ticks since boot,
``/proc/<pid>/stat``) and the boot id: a live pid whose start time differs is another
process, and a name from before the last boot is gone.
"""

import os
from pathlib import Path


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip().replace("-", "")[:8]
    except OSError:
        return ""


def start_ticks(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot), or None if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2:].split()[19]  # field 22, starttime


BOOT = _boot_id()
_mine: tuple[int, str] | None = None


def process_tag() -> str:
    """``<pid>-<start ticks>-<boot id>`` of this process (recomputed in a forked child)."""
    global _mine
    pid = os.getpid()
    if _mine is None or _mine[0] != pid:
        _mine = (pid, f"{pid}-{start_ticks(pid) or 0}-{BOOT}")
    return _mine[1]


def process_alive(pid: int, ticks: str | None = None, boot: str | None = None) -> bool:
    """Whether the process ``process_tag`` named (pid, start ticks, boot id; the last two
    unknown for names an earlier release wrote) may still run on this machine."""
    if boot is not None and boot != BOOT:
        return False  # named before this machine's last boot
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, another user's
    if ticks is None or ticks == "0":
        return True
    now_ticks = start_ticks(pid)
    return now_ticks is None or now_ticks == ticks  # else the pid was reused
