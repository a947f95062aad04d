"""`cdk synth` of the whole app beside the floor: the same CLI synthesizing one empty Python stack."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from bench import procs
from bench.stats import summary

REPO = Path(__file__).resolve().parent.parent
CDK = [str(REPO / "node_modules" / ".bin" / "cdk"), "--no-notices", "--no-version-reporting"]
TIMEOUT_SECONDS = 300
AIM_RATIO = 1.5


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{REPO / '.venv' / 'bin'}:{REPO / 'node_modules' / '.bin'}:{env.get('PATH', '')}"
    env["CDK_DISABLE_VERSION_CHECK"] = "1"
    env["JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION"] = "1"
    return env


def _synth_once(extra: list[str]) -> procs.Measured:
    out = Path(tempfile.mkdtemp(prefix="bench-synth-"))
    try:
        measured = procs.run(
            [*CDK, *extra, "synth", "--quiet", "-o", str(out)], cwd=REPO, env=_env(), timeout=TIMEOUT_SECONDS
        )
        if measured.returncode != 0:
            raise RuntimeError(f"cdk synth {' '.join(extra)} failed ({measured.returncode}):\n{measured.output_tail}")
        return measured
    finally:
        shutil.rmtree(out, ignore_errors=True)


def run(*, repetitions: int) -> dict[str, Any]:
    procs.ensure_time()
    variants = {"app": [], "floor": ["-a", "python3 bench/minimal_app.py"]}
    samples: dict[str, list[procs.Measured]] = {name: [] for name in variants}
    # One unmeasured run each warms the page cache; then the two alternate so drift hits both alike.
    for extra in variants.values():
        _synth_once(extra)
    for _ in range(repetitions):
        for name, extra in variants.items():
            samples[name].append(_synth_once(extra))
            print(f"[synth] {name}: {samples[name][-1].seconds:.2f} s", flush=True)
    result: dict[str, Any] = {"repetitions": repetitions, "command": " ".join([*CDK, "synth", "--quiet", "-o <tmp>"])}
    for name, runs in samples.items():
        result[name] = {
            "seconds": summary([m.seconds for m in runs]),
            "cpu_seconds": summary([m.cpu_seconds for m in runs if m.cpu_seconds is not None]),
            "peak_tree_rss_mib": summary([m.peak_tree_rss / 2**20 for m in runs], digits=1),
            "max_process_rss_mib": summary(
                [m.max_process_rss / 2**20 for m in runs if m.max_process_rss is not None], digits=1
            ),
        }
    ratio = result["app"]["seconds"]["median"] / result["floor"]["seconds"]["median"]
    result["ratio"] = round(ratio, 2)
    result["aim"] = {"text": f"app ≤ {AIM_RATIO}× floor", "met": ratio <= AIM_RATIO}
    # CPU time is less sensitive than wall time to other load on a shared machine.
    cpu_app, cpu_floor = result["app"]["cpu_seconds"], result["floor"]["cpu_seconds"]
    if cpu_app.get("n") and cpu_floor.get("n"):
        result["cpu_ratio"] = round(cpu_app["median"] / cpu_floor["median"], 2)
    return result
