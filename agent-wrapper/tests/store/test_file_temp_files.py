"""The file store's leftover temp files: a store starting beside a worker that is
saving right now leaves that worker's temp file alone (it once deleted it, and the save
failed 503 with "No such file or directory"); temp files of dead writers go."""

import os
import signal
import subprocess
import sys
from pathlib import Path

from agent_wrapper.store import FileStateStore, file_store, process_identity

# A worker process saving a session, held between writing its temp file and renaming it
# (its fsync waits for a line on stdin).
WRITER = """
import os, sys
from agent_wrapper.store.file_store import FileStateStore

store = FileStateStore(sys.argv[1])
fsync = os.fsync

def held(fd):
    os.fsync = fsync
    print("writing", flush=True)
    sys.stdin.readline()
    fsync(fd)

os.fsync = held
store.save("busy-1", {"n": 1})
print("saved", flush=True)
"""


def _start_writer(directory: Path) -> subprocess.Popen:
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(directory)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert writer.stdout is not None and writer.stdout.readline() == "writing\n"
    return writer


def test_a_store_starting_beside_a_busy_writer_keeps_its_temp_file(tmp_path: Path) -> None:
    writer = _start_writer(tmp_path)
    try:
        (temp,) = tmp_path.glob(".busy-1.*.tmp")
        FileStateStore(tmp_path)  # another worker starts now
        assert temp.exists(), "a live writer's temp file was removed"
        assert writer.stdin is not None and writer.stdout is not None
        writer.stdin.write("\n")
        writer.stdin.flush()
        assert writer.stdout.readline() == "saved\n"
        assert writer.wait(30) == 0
    finally:
        if writer.poll() is None:
            writer.kill()
    assert FileStateStore(tmp_path).load("busy-1") == {"n": 1}


def test_temp_files_whose_writer_is_gone_are_removed(tmp_path: Path) -> None:
    writer = _start_writer(tmp_path)
    writer.send_signal(signal.SIGKILL)  # killed mid-write
    writer.wait(30)
    (killed,) = tmp_path.glob(".busy-1.*.tmp")
    pid, boot = os.getpid(), process_identity.BOOT
    reused = tmp_path / f".s-2.w{pid}-1-{boot}.abc.tmp"  # our pid, another start: reused
    old_boot = tmp_path / f".s-3.w{pid}-{process_identity.start_ticks(pid)}-00000000.abc.tmp"
    mine = tmp_path / f".s-4.{file_store._writer_tag()}.abc.tmp"  # this process: alive
    unnamed = tmp_path / ".s-5.abc.tmp"  # an earlier release's: no writer named
    runs = tmp_path / "runs" / "s-7"
    runs.mkdir(parents=True)
    in_runs = runs / f".r-1.w{pid}-1-{boot}.abc.tmp"
    for path in (reused, old_boot, mine, unnamed, in_runs):
        path.write_text("partial")

    FileStateStore(tmp_path)  # a worker starts: it cleans up
    left = sorted(p.name for p in tmp_path.glob(".*.tmp")) + [p.name for p in runs.iterdir()]
    assert left == [mine.name]
    assert not killed.exists()
