"""What the pipeline's light steps spend before their own work: installing the pinned CDK tools and starting them.

Self-mutation and the broadening check install the pinned aws-cdk CLI, the asset actions the pinned cdk-assets
(pipeline/compute.py), each into an empty prefix with an empty npm cache, as on a fresh CodeBuild host. npm uses
this machine's registry configuration; from the public registry in AWS expect more (report/model.py says how much).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import procs
from bench.stats import summary
from bench.synth import _env

REPO = Path(__file__).resolve().parent.parent
TIMEOUT_SECONDS = 300


def _pinned(package: str) -> str:
    return json.loads((REPO / "package.json").read_text())["devDependencies"][package]


def _install_and_start(package: str, binary: str) -> tuple[float, float]:
    root = Path(tempfile.mkdtemp(prefix="bench-tools-"))
    try:
        install = procs.run(
            ["npm", "install", "--no-audit", "--no-fund", "--cache", str(root / "cache"), "--prefix",
             str(root / "prefix"), f"{package}@{_pinned(package)}"],
            cwd=root, env=_env({}), timeout=TIMEOUT_SECONDS, measure_memory=False,
        )
        if install.returncode != 0:
            raise RuntimeError(f"npm install {package} failed:\n{install.output_tail}")
        start = procs.run([str(root / "prefix" / "node_modules" / ".bin" / binary), "--version"], cwd=root,
                          env=_env({}), timeout=TIMEOUT_SECONDS, measure_memory=False)
        if start.returncode != 0:
            raise RuntimeError(f"{binary} --version failed:\n{start.output_tail}")
        return install.seconds, start.seconds
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _verify_install() -> float:
    """Verify's install on Lambda compute: the pinned boto3 into an empty /tmp target, no pip cache."""
    from pipeline.verification import BOTO3

    root = Path(tempfile.mkdtemp(prefix="bench-tools-"))
    try:
        measured = procs.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-cache-dir",
             "--target", str(root / "python"), BOTO3],
            cwd=root, env=_env({}), timeout=TIMEOUT_SECONDS, measure_memory=False,
        )
        if measured.returncode != 0:
            raise RuntimeError(f"pip install {BOTO3} failed:\n{measured.output_tail}")
        return measured.seconds
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run(*, repetitions: int) -> dict[str, Any]:
    result: dict[str, Any] = {"repetitions": repetitions}
    from pipeline.verification import BOTO3

    result["verify_install"] = {"package": BOTO3, "seconds": summary([_verify_install() for _ in range(repetitions)])}
    print(f"[pipeline_tools] {BOTO3}: install {result['verify_install']['seconds']['median']} s", flush=True)
    for package, binary in (("aws-cdk", "cdk"), ("cdk-assets", "cdk-assets")):
        samples = [_install_and_start(package, binary) for _ in range(repetitions)]
        result[package] = {
            "version": _pinned(package),
            "install_seconds": summary([s[0] for s in samples]),
            "start_seconds": summary([s[1] for s in samples]),
        }
        print(f"[pipeline_tools] {package}: install {result[package]['install_seconds']['median']} s", flush=True)
    return result
