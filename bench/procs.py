"""Run a command with a deadline, measuring wall time and peak memory of its whole process tree."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

TIME = "/usr/bin/time"
POLL_SECONDS = 0.02


@dataclass
class Measured:
    seconds: float
    returncode: int
    peak_tree_rss: int
    """Largest sum of RSS over the command's processes seen while polling (shared pages counted per process)."""
    max_process_rss: int | None
    """Largest single process's peak RSS, from /usr/bin/time (kernel ru_maxrss, no polling gaps)."""
    output_tail: str
    cpu_seconds: float | None = None
    """User + system CPU of the command and the descendants it waited for, from /usr/bin/time."""


def ensure_time() -> bool:
    if Path(TIME).exists():
        return True
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-q", "time"], capture_output=True, timeout=300, check=False)
    return Path(TIME).exists()


def _tree_rss(root: psutil.Process, *, include_root: bool) -> int:
    total = 0
    try:
        procs = root.children(recursive=True)
        if include_root:
            procs.append(root)
    except psutil.Error:
        return 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            pass
    return total


def kill_tree(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run(
    command: Sequence[str], *, cwd: Path, env: Mapping[str, str], timeout: float, measure_memory: bool = True
) -> Measured:
    with tempfile.TemporaryDirectory(prefix="bench-run-") as tmp:
        time_file = Path(tmp) / "time.txt"
        wrapped = list(command)
        use_time = measure_memory and Path(TIME).exists()
        if use_time:
            wrapped = [TIME, "-f", "bench %M %U %S", "-o", str(time_file), *command]
        log_path = Path(tmp) / "output.txt"
        peak = 0
        with log_path.open("w") as log:
            started = time.monotonic()
            # Own process group, so a timeout kills every descendant (node, python, jsii, xdist workers).
            process = subprocess.Popen(
                wrapped, cwd=cwd, env=dict(env), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
            stop = threading.Event()

            def poll() -> None:
                nonlocal peak
                try:
                    root = psutil.Process(process.pid)
                except psutil.Error:
                    return
                while not stop.is_set():
                    peak = max(peak, _tree_rss(root, include_root=not use_time))
                    stop.wait(POLL_SECONDS)

            poller = threading.Thread(target=poll, daemon=True)
            if measure_memory:
                poller.start()
            try:
                returncode = process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                kill_tree(process.pid)
                process.wait(timeout=30)
                raise
            finally:
                seconds = time.monotonic() - started
                stop.set()
                if poller.is_alive():
                    poller.join(timeout=5)
                kill_tree(process.pid)  # stragglers that outlived the command
        max_rss = cpu = None
        if use_time and time_file.exists():
            lines = [ln.split() for ln in time_file.read_text().splitlines() if ln.startswith("bench ")]
            if lines:
                max_rss = int(lines[-1][1]) * 1024
                cpu = float(lines[-1][2]) + float(lines[-1][3])
        tail = log_path.read_text(errors="replace")[-3000:]
    return Measured(
        seconds=seconds,
        returncode=returncode,
        peak_tree_rss=peak,
        max_process_rss=max_rss,
        output_tail=tail,
        cpu_seconds=cpu,
    )
