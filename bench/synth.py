"""`cdk synth` of the whole app as `make synth` runs it, beside the floor: the same CLI synthesizing one empty Python
stack. Also measured, not part of the ratio: the floor without aws-cdk-lib's built-in template validator (which an
empty app runs by default), and the validated synth of the pipeline's build and `make deploy`."""

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


# name → (extra CLI arguments, extra environment)
VARIANTS: dict[str, tuple[list[str], dict[str, str]]] = {
    "app": ([], {"DELIVERY_VALIDATE": "0"}),  # what the Makefile's synth target sets unless told otherwise
    "floor": (["-a", "python3 bench/minimal_app.py"], {}),
    "floor_without_validator": (["-a", "python3 bench/minimal_app.py"], {"CDK_VALIDATION": "false"}),
    "validated": ([], {"DELIVERY_VALIDATE": "1"}),  # cdk-nag (2 packs) + the built-in validator
}


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("CDK_VALIDATION", None)
    env.pop("DELIVERY_VALIDATE", None)
    env.update(extra)
    env["PATH"] = f"{REPO / '.venv' / 'bin'}:{REPO / 'node_modules' / '.bin'}:{env.get('PATH', '')}"
    env["CDK_DISABLE_VERSION_CHECK"] = "1"
    env["JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION"] = "1"
    return env


def _synth_once(extra: list[str], env: dict[str, str]) -> procs.Measured:
    out = Path(tempfile.mkdtemp(prefix="bench-synth-"))
    try:
        measured = procs.run(
            [*CDK, *extra, "synth", "--quiet", "-o", str(out)], cwd=REPO, env=_env(env), timeout=TIMEOUT_SECONDS
        )
        if measured.returncode != 0:
            raise RuntimeError(f"cdk synth {' '.join(extra)} failed ({measured.returncode}):\n{measured.output_tail}")
        return measured
    finally:
        shutil.rmtree(out, ignore_errors=True)


def run(*, repetitions: int) -> dict[str, Any]:
    procs.ensure_time()
    samples: dict[str, list[procs.Measured]] = {name: [] for name in VARIANTS}
    # One unmeasured run each warms the page cache; then the variants alternate so drift hits all alike.
    for extra, env in VARIANTS.values():
        _synth_once(extra, env)
    for _ in range(repetitions):
        for name, (extra, env) in VARIANTS.items():
            samples[name].append(_synth_once(extra, env))
            print(f"[synth] {name}: {samples[name][-1].seconds:.2f} s", flush=True)
    result: dict[str, Any] = {
        "repetitions": repetitions,
        "command": " ".join([*CDK, "synth", "--quiet", "-o <tmp>"]),
        "variants": {name: {"args": extra, "env": env} for name, (extra, env) in VARIANTS.items()},
    }
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
    # The same ratios against the floor that skips the validator, and the validated synth against the app.
    result["other_ratios"] = {
        f"{a}/{b} {unit}": round(result[a][key]["median"] / result[b][key]["median"], 2)
        for a, b in (("app", "floor_without_validator"), ("validated", "floor"), ("validated", "app"))
        for key, unit in (("seconds", "wall"), ("cpu_seconds", "cpu"))
        if result[a][key].get("n") and result[b][key].get("n")
    }
    return result
