"""`python -m bench [--quick] [--only synth,tests,service,faults,container,pipeline_tools]`: runs the benchmarks, writes
bench/results/."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from bench import machine, report

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
ALL = ("synth", "tests", "service", "faults", "container", "pipeline_tools")
# (full, --quick) repetitions
REPETITIONS = {"synth": (5, 2), "tests": (3, 1), "service": (3, 1), "faults": (3, 1), "container": (5, 2), "pipeline_tools": (3, 1)}
SUITE_REPETITIONS = (2, 1)
WRK_SECONDS = (10, 5)
OUTAGE_SECONDS = (12.0, 8.0)


def _run(name: str, quick: bool) -> dict[str, Any]:
    reps = REPETITIONS[name][quick]
    if name == "synth":
        from bench import synth

        return synth.run(repetitions=reps)
    if name == "tests":
        from bench import suite

        return suite.run(repetitions=reps, suite_repetitions=SUITE_REPETITIONS[quick])
    if name == "service":
        from bench import service

        return service.run(repetitions=reps, seconds=WRK_SECONDS[quick])
    if name == "faults":
        from bench import faults

        return faults.run(repetitions=reps, outage_seconds=OUTAGE_SECONDS[quick])
    if name == "pipeline_tools":
        from bench import pipeline_tools

        return pipeline_tools.run(repetitions=reps)
    from bench import container

    return container.run(repetitions=reps)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and shorter load runs")
    parser.add_argument("--only", default=",".join(ALL), help=f"comma-separated subset of {','.join(ALL)}")
    args = parser.parse_args(argv)
    selected = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in selected if name not in ALL]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(ALL)}")
    os.chdir(HERE.parent)
    RESULTS.mkdir(exist_ok=True)
    results_file = RESULTS / "results.json"
    # A subset run replaces only its own sections; the others keep their earlier numbers and timestamps.
    results: dict[str, Any] = json.loads(results_file.read_text()) if results_file.exists() else {}
    results["machine"] = machine.facts()
    failed = []
    for name in selected:
        print(f"== {name} ==", flush=True)
        started = time.monotonic()
        try:
            section = _run(name, args.quick)
        except Exception:  # noqa: BLE001 - one failing benchmark must not lose the others' results
            traceback.print_exc()
            failed.append(name)
            continue
        section["measured_at"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        section["quick"] = args.quick
        section["bench_seconds"] = round(time.monotonic() - started, 1)
        section["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
        results[name] = section
        results_file.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    results_file.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    (RESULTS / "README.md").write_text(report.results_readme(results))
    report.update_readme(HERE / "README.md", results)
    print(report.table(results))
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
