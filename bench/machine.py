"""Facts about the machine a run happened on, stored with the results."""

from __future__ import annotations

import datetime
import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(command: list[str]) -> str | None:
    if not shutil.which(command[0]) and not Path(command[0]).exists():
        return None
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else None


def facts() -> dict[str, Any]:
    venv_bin = REPO / ".venv" / "bin"
    mem_total = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_total = int(line.split()[1]) * 1024
    except OSError:
        pass
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "cpu_model": _cpu_model(),
        "mem_total_bytes": mem_total,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "kernel": platform.release(),
        "python": _version([str(venv_bin / "python"), "--version"]),
        "node": _version([str(venv_bin / "node"), "--version"]) or _version(["node", "--version"]),
        "cdk_cli": _version([str(REPO / "node_modules" / ".bin" / "cdk"), "--version"]),
        "wrk": _version(["wrk", "--version"]),
        "docker": _version(["docker", "version", "--format", "{{.Server.Version}}"]),
        "git_commit": _version(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]),
        "git_dirty": bool(_version(["git", "-C", str(REPO), "status", "--porcelain"])),
    }
