"""Renders results.json as the Markdown table in bench/results/README.md and bench/README.md."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from bench.stats import spread

START, END = "<!-- bench:results:start -->", "<!-- bench:results:end -->"


def _aim(met: bool | None) -> str:
    return "—" if met is None else ("met" if met else "**not met**")


def _never(section: dict[str, Any], key: str) -> str:
    never = section.get(f"{key}_never")
    measured = spread(section.get(key, {}), " s") if section.get(key) else ""
    if not never:
        return measured or "—"
    runs = len(section.get("runs", [])) or never
    return f"never ({never} of {runs} runs)" + (f"; otherwise {measured}" if measured else "")


def table(results: dict[str, Any]) -> str:
    rows: list[tuple[str, str, str, str]] = []
    synth = results.get("synth")
    if synth:
        app, floor = synth["app"], synth["floor"]
        rows += [
            ("synth: whole app", spread(app["seconds"], " s"), f"{synth['ratio']}× floor",
             f"{synth['aim']['text']}: {_aim(synth['aim']['met'])}"),
            ("synth: floor (one empty stack)", spread(floor["seconds"], " s"), "baseline", ""),
            ("synth: CPU time (user+sys), whole app", spread(app.get("cpu_seconds", {}), " s"),
             f"floor {spread(floor.get('cpu_seconds', {}), ' s')}; {synth.get('cpu_ratio', '—')}×", ""),
            ("synth: peak RSS, process tree", spread(app["peak_tree_rss_mib"], " MiB", 0),
             f"floor {spread(floor['peak_tree_rss_mib'], ' MiB', 0)}", ""),
        ]
    tests = results.get("tests")
    if tests:
        rows += [
            ("tests: tests/infra (-n 2)", spread(tests["infra"]["seconds"], " s", 1), "",
             f"{tests['aim']['text']}: {_aim(tests['aim']['met'])}"),
            ("tests: whole suite (-n 2)", spread(tests["all"]["seconds"], " s", 1),
             tests["all"]["outcomes"][-1]["summary"] if tests["all"]["outcomes"] else "", ""),
        ]
    svc = results.get("service")
    if svc:
        aims = svc["aims"]
        for name, label, note in (
            ("service_root", "service: our `GET /`", f"{svc['root_vs_minimal_rps']:.1%} of minimal"),
            ("service_notes", "service: `GET /api/notes?limit=20` (DB)", ""),
            ("minimal_root", "service: minimal FastAPI `GET /`", "baseline"),
        ):
            s = svc[name]
            value = (f"{spread(s['rps'], ' req/s', 0)}; p50 {spread(s['p50_ms'], ' ms')}; "
                     f"p99 {spread(s['p99_ms'], ' ms')}")
            aim = ""
            if name == "service_root":
                aim = "; ".join(f"{a['text']}: {_aim(a['met'])}" for a in aims)
            rows.append((label, value, note, aim))
        mem = svc["memory_after_load"]
        rows.append(("service: RSS per worker after load", f"{mem['service']['rss_mib']} MiB",
                     f"minimal {mem['minimal']['rss_mib']} MiB", ""))
    faults = results.get("faults")
    if faults:
        aims = {a["text"]: a["met"] for a in faults.get("aims", [])}
        for fault, label in (("hung", "database frozen (SIGSTOP)"), ("stopped", "database stopped")):
            f = faults[fault]
            rows += [
                (f"faults: {label}, first 503", _never(f, "api_first_503_s"),
                 f"`/readyz` 503: {_never(f, 'readyz_first_503_s')}; longest request "
                 f"{spread(f.get('api_longest_request_s', {}), ' s')}", ""),
                (f"faults: {label}, served during the outage", spread(f.get("outage_rps", {}), " req/s", 0),
                 f"steady {spread(f.get('steady_rps', {}), ' req/s', 0)}; "
                 f"p99 {spread(f.get('outage_p99_ms', {}), ' ms', 0)}", ""),
                (f"faults: {label}, recovered after repair", _never(f, "api_recovered_s"),
                 f"`/readyz` 200: {_never(f, 'readyz_recovered_s')}", ""),
            ]
        rows[-1] = (*rows[-1][:3], "; ".join(f"{text}: {_aim(met)}" for text, met in aims.items()))
    box = results.get("container")
    if box:
        rows += [
            ("container: image size", f"{box['size_mib']} MiB",
             f"base {box['base_size_mib']} MiB, added {box['added_mib']} MiB", ""),
            ("container: cold start to `/healthz` 200", spread(box["cold_start_seconds"], " s"), "", ""),
        ]
        if "build_no_cache_seconds" in box:
            rows.append(("container: `docker build` without layer cache (as the pipeline's asset action)",
                         f"{box['build_no_cache_seconds']} s", "base image already local; report/model.py uses it",
                         ""))
    tools = results.get("pipeline_tools")
    if tools and "verify_install" in tools:
        rows.append((f"pipeline tools: `pip install --target <tmp> {tools['verify_install']['package']}` (Verify's install)",
                     spread(tools["verify_install"]["seconds"], " s"), "empty target, no pip cache", ""))
    if tools:
        for package in ("aws-cdk", "cdk-assets"):
            entry = tools[package]
            rows.append((f"pipeline tools: `npm install {package}@{entry['version']}` (empty cache and prefix)",
                         spread(entry["install_seconds"], " s"), f"then `--version`: "
                         f"{spread(entry['start_seconds'], ' s')}", ""))
    lines = ["| measurement | median (min–max, n) | beside | aim |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(lines)


def machine_line(results: dict[str, Any]) -> str:
    m = results.get("machine", {})
    return (f"Measured {m.get('date')} on {m.get('nproc')} CPUs ({m.get('cpu_model')}), load average at start "
            f"{m.get('load_average_at_start')}; {m.get('python')}, Node {m.get('node')}, CDK CLI {m.get('cdk_cli')}, "
            f"commit {m.get('git_commit')}{' (with uncommitted changes)' if m.get('git_dirty') else ''}.")


def results_readme(results: dict[str, Any]) -> str:
    parts = [
        "# Latest benchmark results",
        "",
        "Written by `python -m bench` (see `bench/README.md` for what each row measures); raw numbers, every sample",
        "and the machine facts are in `results.json`.",
        "",
        machine_line(results),
        "",
        table(results),
        "",
    ]
    measured = {k: v.get("measured_at") for k, v in results.items() if isinstance(v, dict) and "measured_at" in v}
    if measured:
        parts += ["Each section's time of measurement: " + ", ".join(f"{k} {v}" for k, v in measured.items()), ""]
    return "\n".join(parts)


def update_readme(path: Path, results: dict[str, Any]) -> None:
    if not path.exists():
        return
    text = path.read_text()
    block = f"{START}\n{machine_line(results)}\n\n{table(results)}\n{END}"
    if START in text and END in text:
        text = re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _: block, text, flags=re.S)
        path.write_text(text)
