"""Wall time of the infrastructure tests and of the whole test suite (what `make test` runs after install)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bench import procs
from bench.stats import summary

REPO = Path(__file__).resolve().parent.parent
PYTHON = str(REPO / ".venv" / "bin" / "python")
AIM_INFRA_SECONDS = 60.0
TIMEOUT_SECONDS = {"infra": 900, "all": 2400}
TARGETS = {"infra": ["tests/infra"], "all": ["tests"]}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{REPO / '.venv' / 'bin'}:{REPO / 'node_modules' / '.bin'}:{env.get('PATH', '')}"
    env["CDK_DISABLE_VERSION_CHECK"] = "1"
    env["JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION"] = "1"
    return env


def _outcome(tail: str) -> str:
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def run(*, repetitions: int, suite_repetitions: int) -> dict[str, Any]:
    result: dict[str, Any] = {"repetitions": {"infra": repetitions, "all": suite_repetitions}}
    for name, targets in TARGETS.items():
        command = [PYTHON, "-m", "pytest", "-q", "-n", "2", *targets]
        runs = []
        outcomes = []
        for _ in range(repetitions if name == "infra" else suite_repetitions):
            measured = procs.run(command, cwd=REPO, env=_env(), timeout=TIMEOUT_SECONDS[name], measure_memory=False)
            runs.append(measured.seconds)
            outcomes.append({"returncode": measured.returncode, "summary": _outcome(measured.output_tail)})
            print(f"[tests] {name}: {measured.seconds:.1f} s — {outcomes[-1]['summary']}", flush=True)
        result[name] = {
            "command": " ".join(["python", "-m", "pytest", "-q", "-n", "2", *targets]),
            "seconds": summary(runs, digits=1),
            "outcomes": outcomes,
        }
    median = result["infra"]["seconds"]["median"]
    result["aim"] = {"text": f"infra tests ≤ {AIM_INFRA_SECONDS:.0f} s", "met": median <= AIM_INFRA_SECONDS}
    return result
