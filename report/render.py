"""Thin renderer: applies the model to an Assembly and writes Markdown and the timeline picture."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from report import model
from report.assembly import Assembly
from report.model import Environment, Step


@dataclass(frozen=True, kw_only=True)
class Report:
    ours: list[Step]
    defaults: list[Step]
    previous: list[Step]  # the previous model's estimates on the same template
    revert: list[Step]  # a revert: the image is already in ECR
    before: list[Step]  # this model with issue 12's levers taken out (standard compute, full stack updates)
    environments: list[Environment]
    asset_ids: dict[str, list[str]]

    @property
    def lead_ours_s(self) -> int:
        return model.lead_time_s(self.ours)

    @property
    def lead_defaults_s(self) -> int:
        return model.lead_time_s(self.defaults)

    @property
    def lead(self) -> model.LeadTime:
        return model.lead_time(self.ours)


def build_report(assembly: Assembly) -> Report:
    envs = [model.environment_of(name, stacks) for name, stacks in assembly.stages.items()]
    services = {e.service_stack: e.service for e in envs if e.service is not None}
    counts = {k: len(v) for k, v in assembly.asset_ids.items()}
    counts["docker_destinations"] = assembly.docker_destinations
    counts["file"] = assembly.file_publishes or counts.get("file", 0)
    # The modelled commit changes the service only: every file asset's hash (Lambda code) stays the same.
    counts["files_unchanged"] = 1
    template = assembly.pipeline_template
    # The modelled commit changes the service: stacks without the Docker image keep their template.
    common = dict(services=services, assets=counts, template=template, unchanged_stacks=assembly.stacks_without_image)
    ours = model.pipeline_steps(assembly.pipeline, **common)
    previous = model.pipeline_steps(assembly.pipeline, **common, timing=model.PREVIOUS)
    before = model.pipeline_steps(assembly.pipeline, **common, timing=model.BEFORE_LEVERS)
    revert = model.pipeline_steps(assembly.pipeline, **common, image_exists=True)
    default_services = {k: model.with_cdk_default_health(v) for k, v in services.items()}
    defaults = model.pipeline_steps(model.cdk_defaults_pipeline(assembly.pipeline, asset_ids=assembly.asset_ids),
                                    services=default_services, assets={"docker": 1, "file": 1}, template=template,
                                    unchanged_stacks=assembly.stacks_without_image, timing=model.CDK_DEFAULTS)
    order = {s.stage: i for i, s in enumerate(ours)}
    envs.sort(key=lambda e: order.get(e.name, len(order)))
    return Report(ours=ours, defaults=defaults, previous=previous, revert=revert, before=before, environments=envs,
                  asset_ids=assembly.asset_ids)


def fmt(seconds: float) -> str:
    seconds = int(round(seconds))
    minutes, secs = divmod(seconds, 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


KIND_LABEL = {"source": "source", "codebuild": "CodeBuild", "cloudformation": "CloudFormation",
              "changeset": "CloudFormation change set", "approval": "approval (human wait)",
              "gate": "stage condition (OnSuccess gate)", "condition": "stage condition (BeforeEntry)",
              "other": "other"}


def _kind(s: Step) -> str:
    kind = KIND_LABEL[s.kind]
    if s.compute:
        kind += f" ({s.compute})"
    if any(label == "ECS rollout" for label, _ in s.segments):
        kind += " + ECS rollout"
    return kind


def _steps_table(steps: list[Step]) -> list[str]:
    critical = {id(s) for s in model.critical_path(steps)}
    rows = ["| # | stage | action | kind | run order | start | work | bakes and gates | made of |",
            "|---|---|---|---|---|---|---|---|---|"]
    for i, s in enumerate(steps, 1):
        parts = ", ".join(f"{label} {fmt(sec)}" for label, sec in s.segments)
        mark = "" if id(s) in critical else " (parallel, off the critical path)"
        bakes = s.seconds_of("bake", "gate")
        rows.append(f"| {i} | {s.stage} | {s.name}{mark} | {_kind(s)} | {s.run_order} | {fmt(s.start_s)} | "
                    f"{fmt(s.seconds_of('work'))} | {fmt(bakes) if bakes else '–'} | {parts} |")
    return rows


def _headline_lines(report: Report) -> list[str]:
    lead, revert = report.lead, model.lead_time(report.revert)
    bakes = "; ".join(f"{stage} {label} {fmt(sec)}" for stage, label, sec in model.bakes_and_gates(report.ours))
    return [
        f"- Modelled commit → prod: **{fmt(lead.work_s)} of work** + **{fmt(lead.bakes_and_gates_s)} of bakes and "
        f"gates** = **{fmt(lead.total_s)}** in total. Excluded: approvals (human waits) and the prod "
        "deployment window (a calendar wait: a release outside it waits for the window or fails).",
        f"- Bakes and gates on the path: {bakes or 'none'}.",
        f"- Revert (commit → prod when the image already exists, Docker build skipped): **{fmt(revert.work_s)} of "
        f"work** + {fmt(revert.bakes_and_gates_s)} of bakes and gates = **{fmt(revert.total_s)}**.",
        f"- Previous model on the same template: {fmt(model.lead_time_s(report.previous))} \"excluding human "
        f"waits\" (bakes counted as lead time, gate watch not modelled, {model.PREVIOUS_CODEBUILD_PROVISION_S} s "
        "per CodeBuild start).",
    ]


def _before_after(report: Report) -> list[str]:
    before, after = model.lead_time(report.before), report.lead
    lambda_starts = sum(1 for s in model.critical_path(report.ours) if s.compute and "LAMBDA" in s.compute)
    noops = sum(1 for s in model.critical_path(report.ours) for label, _ in s.segments if label.startswith("no-op"))
    rows = ["### Before and after the lead-time levers (same model)", "",
            f"Both columns run this model on the same synthesized template. \"Before\" takes issue 12's levers "
            f"out: every CodeBuild action on standard compute ({model.CODEBUILD_PROVISION_S} s to start), every "
            f"stack fully updated, the service's tests inside the Build action and pip byte-compiling the lock "
            f"(+{model.PIP_COMPILE_S} s). \"After\" is the pipeline as synthesized: {lambda_starts} light actions on "
            f"Lambda compute ({model.CODEBUILD_LAMBDA_PROVISION_S} s to start), the {noops} stacks a service change "
            f"leaves unchanged cost a no-op update, the service's tests run in the `{model.SERVICE_TESTS_ACTION}` "
            "action beside Build, and the build installs without bytecode compilation.", "",
            "| | before | after |", "|---|---|---|",
            f"| work | {fmt(before.work_s)} | **{fmt(after.work_s)}** |",
            f"| bakes and gates | {fmt(before.bakes_and_gates_s)} | {fmt(after.bakes_and_gates_s)} |",
            f"| total | {fmt(before.total_s)} | {fmt(after.total_s)} |",
            "", "Critical path step by step (work only; bakes and gates are unchanged):", "",
            "| stage | action | before | after | change |", "|---|---|---|---|---|"]
    previous = {(s.stage, s.name): s for s in model.critical_path(report.before)}
    for s in model.critical_path(report.ours):
        b = previous.get((s.stage, s.name))
        old = b.seconds_of("work") if b else 0
        delta = s.seconds_of("work") - old
        sign = "+" if delta > 0 else "−" if delta < 0 else "±"
        rows.append(f"| {s.stage} | {s.name} | {fmt(old) if b else 'not modelled'} | {fmt(s.seconds_of('work'))} | "
                    f"{sign}{fmt(abs(delta))} |")
    delta = after.work_s - before.work_s
    rows.append(f"| **commit → prod work** | | **{fmt(before.work_s)}** | **{fmt(after.work_s)}** | "
                f"**{'+' if delta > 0 else '−'}{fmt(abs(delta))}** |")
    return rows + [""]


def _revert_section(report: Report) -> list[str]:
    revert = model.lead_time(report.revert)
    rows = ["### Revert path (image already in ECR)", "",
            "`git revert` of a bad release gives the image hash of the release before it (the Dockerfile builds "
            "`service/` only), so the Docker publishing action finds the image and skips build and push. Every "
            "other step runs as in a release: build and synth, self-mutation, every environment, the same bakes "
            "and gates.", "",
            "| | release | revert |", "|---|---|---|"]
    lead = report.lead
    for a, b in zip(report.ours, report.revert):
        if a.duration_s != b.duration_s:
            rows.append(f"| {a.stage}: {a.name} | {fmt(a.duration_s)} | {fmt(b.duration_s)} |")
    for stage in dict.fromkeys(a.stage for a, b in zip(report.ours, report.revert) if a.duration_s != b.duration_s):
        rows.append(f"| {stage} stage (slowest action) | {fmt(_stage_span(report.ours, stage))} | "
                    f"{fmt(_stage_span(report.revert, stage))} |")
    rows += [f"| work | {fmt(lead.work_s)} | **{fmt(revert.work_s)}** |",
             f"| bakes and gates | {fmt(lead.bakes_and_gates_s)} | {fmt(revert.bakes_and_gates_s)} |",
             f"| **total** | **{fmt(lead.total_s)}** | **{fmt(revert.total_s)}** |", ""]
    return rows


def render_markdown(report: Report, *, picture: str, assembly_path: str) -> str:
    ours, dflt = report.lead_ours_s, report.lead_defaults_s
    out = [
        "# Delivery report",
        "",
        f"Generated by `python -m report {assembly_path}` from the synthesized cloud assembly (not the Python "
        "code). Every duration is a **model**: documented mechanisms (health checks, alarm periods, deployment "
        "percentages) combined with the estimates in the assumptions table. Measure real pipeline runs before "
        "relying on a figure.",
        "",
        "## Headline",
        "",
        *_headline_lines(report),
        f"- CDK Pipelines defaults on the same model: {fmt(dflt)} in total, ratio defaults/ours "
        f"**{dflt / ours:.2f}×**.",
        "- Two different bakes in prod, never to be confused: the **canary step bake** (traffic held at the canary "
        "percentage while the deployment alarms watch; a bad canary is rolled back here) and the **post-rollout "
        "bake** (`BakeTimeInMinutes`: 100 % on the new tasks, the old ones kept for an instant rollback).",
    ]
    for env in report.environments:
        if env.service is None:
            continue
        fastest = model.deployment_alarms(env)[0] if env.service.alarm_names else None
        r = model.rollout(env.service)
        fastest_text = f"≤ {fmt(fastest.decision_s)} ({fastest.name})" if fastest else "no deployment alarm"
        cost = model.monthly_cost(env)[-1][1]
        out.append(f"- {env.name}: rollback decision {fastest_text}; all {r.tasks} task(s) replaced in "
                   f"{fmt(r.replace_s)}; ~USD {cost:,.2f}/month." + _canary_headline(model.bad_canary(env)))
    out += ["", f"![Modelled pipeline timeline]({picture})", "", "## 1. Critical path (this pipeline)", "",
            "Stages run in order; inside a stage, actions with the same RunOrder run in parallel and the group "
            "lasts as long as its slowest action. Approvals and the deployment window count as 0 s (human and "
            "calendar waits, excluded). The stack that holds the ECS service includes the ECS rollout, the canary "
            "step bake and the post-rollout bake, because CloudFormation waits for the deployment to finish. The "
            "promotion gate is a stage condition (OnSuccess): it watches after the stage's last action.", ""]
    out += _steps_table(report.ours)
    lead = report.lead
    out += ["", f"**Modelled lead time commit → prod (no human waits): {fmt(ours)}** = {fmt(lead.work_s)} work "
            f"+ {fmt(lead.bakes_and_gates_s)} bakes and gates.", ""]
    out += _before_after(report)
    out += _revert_section(report)
    out += ["### Assumptions", "", "| assumption | value | source |", "|---|---|---|"]
    out += [f"| {a} | {v} | {src} |" for a, v, src in model.ASSUMPTIONS]
    n_docker, n_file = len(report.asset_ids.get("docker", [])), len(report.asset_ids.get("file", []))
    out += ["", "## 2. Same app with CDK Pipelines defaults", "",
            f"Same stages, same build, same deployment strategy and task counts, but: one CodeBuild action per "
            f"asset ({n_docker} Docker + {n_file} file assets, all in parallel, each paying provisioning), "
            "prepare + execute change set per stack, and ALB target-group defaults (health check 30 s × 5 "
            "healthy threshold, 300 s deregistration delay).", "",
            "| stage | ours | CDK Pipelines defaults |", "|---|---|---|"]
    for stage in dict.fromkeys(s.stage for s in report.ours):
        a = _stage_span(report.ours, stage)
        b = _stage_span(report.defaults, stage)
        out.append(f"| {stage} | {fmt(a)} | {fmt(b)} |")
    out += [f"| **commit → prod** | **{fmt(ours)}** | **{fmt(dflt)}** |", "",
            f"Ratio defaults / ours: **{dflt / ours:.2f}×** ({fmt(dflt - ours)} longer per release).", "",
            "<details><summary>Every action under the defaults</summary>", ""]
    out += _steps_table(report.defaults)
    out += ["", "</details>", "", "## 3. Rollback, replacement, approvals and bake per environment", "",
            "Rollback decision bound for a deployment alarm, from the moment traffic reaches a bad revision: "
            "period × evaluation periods, plus one period (the traffic shift lands anywhere inside one), plus "
            "the publishing delay and the alarm's evaluation interval (stages/alarm_timing.py, the same numbers "
            "the alarms are built from). ECS rolls back as soon as any deployment alarm is in ALARM; a canary "
            "must bake at least as long as its slowest deployment alarm needs.", "",
            "Task replacement with a healthy change:", "",
            "```",
            "healthy  = max(grace period, health-check interval × healthy threshold)",
            "drain    = deregistration delay + StopTimeout            (worst case)",
            "rolling: batch = (floor(N × max% / 100) − N) + (N − ceil(N × min% / 100)),  waves = ceil(N / batch)",
            "         replace = waves × (task start + healthy + drain)",
            "canary:  replace = task start + healthy + lifecycle hook + canary step bake + drain",
            "         then the post-rollout bake (BakeTimeInMinutes)",
            f"task start = {model.TASK_START_S} s (estimate), lifecycle hook = {model.LIFECYCLE_HOOK_S} s (estimate)",
            "N = minimum task count (scalable target MinCapacity)",
            "```", ""]
    approvals: dict[str, list[str]] = {}
    for s in report.ours:
        if s.kind in ("approval", "condition"):
            # Approvals live in their own "Approve-<Env>" stage (a stage rollback never replays one).
            approvals.setdefault(s.stage.removeprefix("Approve-"), []).append(s.name)
    for env in report.environments:
        out += [f"### {env.name}", ""]
        svc = env.service
        if svc is None:
            out += ["No ECS service in this stage.", ""]
            continue
        alarms = model.deployment_alarms(env)
        out += ["| deployment alarm | period | datapoints / evaluation periods | decision bound |", "|---|---|---|---|"]
        for i, a in enumerate(alarms):
            mark = " **(fastest)**" if i == 0 else ""
            out.append(f"| {a.name}{mark} | {a.period_s} s | {a.datapoints}/{a.evaluation_periods or a.datapoints} | "
                       f"{fmt(a.decision_s)} |")
        out += _canary_table(env, alarms)
        r = model.rollout(svc)
        r_max = model.rollout(svc, svc.max_tasks)
        r_def = model.rollout(model.with_cdk_default_health(svc))
        out += ["", "| input | value |", "|---|---|",
                f"| strategy | {svc.strategy}" + (f" ({svc.canary_percent:g} % per step, canary step bake "
                                                    f"{svc.canary_bake_min} min × {svc.held_steps})"
                                                    if svc.canary_percent else "")
                + " |",
                f"| tasks (min–max) | {svc.min_tasks}–{svc.max_tasks} |",
                f"| minimum healthy / maximum percent | {svc.min_percent} % / {svc.max_percent} % |",
                f"| health check | {svc.health_interval_s} s × {svc.healthy_threshold}, grace {svc.grace_s} s |",
                f"| deregistration delay / StopTimeout | {svc.deregistration_s} s / {svc.stop_timeout_s} s |",
                f"| healthy / drain | {fmt(model.healthy_s(svc))} / {fmt(model.drain_s(svc))} |",
                f"| waves × wave | {r.waves} × {fmt(r.wave_s)} |",
                f"| **replace all {r.tasks} task(s)** | **{fmt(r.replace_s)}** (at max {r_max.tasks} tasks: "
                f"{fmt(r_max.replace_s)}; with ALB defaults: {fmt(r_def.replace_s)}) |",
                f"| canary step bake (inside the replacement) | {fmt(r.step_bake_s) if r.step_bake_s else 'none'} |",
                f"| post-rollout bake (BakeTimeInMinutes, after the replacement) | "
                f"{fmt(r.bake_s) if r.bake_s else 'none'} |",
                f"| approvals and entry conditions before deploy | {', '.join(approvals.get(env.name, [])) or 'none'} |", ""]
    out += ["## 4. Modelled monthly cost", "",
            f"List prices as of {model.PRICE_DATE} (eu-west-1, on-demand, USD; from memory of the public pricing "
            "pages), **verify before budgeting**. 730 h/month, services at their minimum task count; data "
            "transfer, NAT data processing, LCUs beyond the estimate, WAF requests, backups and log storage "
            "are not included.", "",
            "| price | USD | unit | page |", "|---|---|---|---|"]
    for key, (usd, unit, page) in model.PRICES.items():
        out.append(f"| {key} | {usd:g} | {unit} | {page} |")
    out.append("")
    totals = []
    for env in report.environments:
        lines = model.monthly_cost(env)
        totals.append((env.name, lines[-1][1]))
        out += [f"### {env.name}", "", "| item | USD/month |", "|---|---|"]
        out += [f"| {name} | {usd:,.2f} |" if name != "Total" else f"| **Total** | **{usd:,.2f}** |"
                for name, usd in lines]
        out.append("")
    out += ["### All environments", "", "| environment | USD/month |", "|---|---|"]
    out += [f"| {name} | {usd:,.2f} |" for name, usd in totals]
    out += [f"| **Total** | **{sum(u for _, u in totals):,.2f}** |", ""]
    return "\n".join(out)


def _canary_headline(verdict: model.CanaryVerdict | None) -> str:
    if verdict is None:
        return ""
    if verdict.decision_s is None:
        return f" Bad canary at {verdict.canary_percent:g} % traffic: no deployment 5xx-rate alarm sees it."
    ok = "caught before promotion" if verdict.caught_before_promotion else "**promoted before the alarms can decide**"
    return (f" Bad canary at {verdict.canary_percent:g} % traffic: rollback decision ≤ {fmt(verdict.decision_s)}, "
            f"canary step bake {fmt(verdict.canary_bake_s)} ({ok}).")


def _canary_table(env: Environment, alarms: list[model.Alarm]) -> list[str]:
    first = model.bad_canary(env)
    if first is None:
        return []
    slowest = max(alarms, key=lambda a: a.decision_s)
    bake_ok = "≥" if first.canary_bake_s >= slowest.decision_s else "**<**"
    rows = ["", f"Canary at {first.canary_percent:g} % of traffic: its canary step bake of {fmt(first.canary_bake_s)} {bake_ok} the "
            f"slowest deployment alarm's decision bound ({fmt(slowest.decision_s)}, {slowest.name}). A bad canary "
            "as the 5xx-rate alarms see it (rate seen / threshold):", ""]
    names = [a.name for a, _ in first.seen]
    rows += ["| canary requests failing | " + " | ".join(names) + " | rollback decision |",
             "|---|" + "---|" * len(names) + "---|"]
    for failing in (100.0, 5.0):
        verdict = model.bad_canary(env, failing)
        assert verdict is not None
        cells = [f"{rate:g} % / {a.threshold:g} %" + (" ✓" if a in verdict.tripping else "") for a, rate in verdict.seen]
        decision = f"≤ {fmt(verdict.decision_s)}" if verdict.decision_s is not None else "not seen"
        rows.append(f"| {failing:g} % | " + " | ".join(cells) + f" | {decision} |")
    return rows


def _stage_span(steps: list[Step], stage: str) -> int:
    members = [s for s in steps if s.stage == stage]
    if not members:
        return 0
    return max(s.start_s + s.duration_s for s in members) - min(s.start_s for s in members)


COLOURS = {"provision": "#bbbbbb", "ECS rollout": "#2b8cbe", "canary step bake": "#fee08b",
           model.POST_BAKE_LABEL: "#fdae61", model.GATE_LABEL: "#f46d43", "stack update": "#7b3294",
           "create change set": "#c2a5cf", model.HUMAN_WAIT_LABEL: "#d7191c"}


def _colour(label: str) -> str:
    if label.startswith("canary step bake"):
        return COLOURS["canary step bake"]
    return COLOURS.get(label, "#4dac26")


def render_timeline(report: Report, path: Path) -> None:
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text: small, diffable SVG
    matplotlib.rcParams["svg.hashsalt"] = "delivery-report"  # stable element ids between runs
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    panels = [("This pipeline", report.ours), ("CDK Pipelines defaults", report.defaults)]
    heights = [max(len(steps), 1) for _, steps in panels]
    fig, axes = plt.subplots(2, 1, figsize=(12, 0.28 * sum(heights) + 2.5), sharex=True,
                             gridspec_kw={"height_ratios": heights})
    for ax, (title, steps) in zip(axes, panels):
        for y, s in enumerate(steps):
            x = s.start_s / 60
            if s.kind in ("approval", "condition"):  # human and calendar waits: a marker, no duration
                ax.plot([x], [y], marker="D", color=COLOURS[model.HUMAN_WAIT_LABEL])
            for label, sec in s.segments:
                ax.barh(y, sec / 60, left=x, height=0.6, color=_colour(label))
                x += sec / 60
        ax.set_yticks(range(len(steps)), [f"{s.stage}: {s.name}" for s in steps], fontsize=7)
        ax.invert_yaxis()
        lead = model.lead_time(steps)
        ax.set_title(f"{title}: commit → prod {fmt(lead.work_s)} work + {fmt(lead.bakes_and_gates_s)} bakes and "
                     f"gates = {fmt(lead.total_s)} (no human waits)", fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    axes[-1].set_xlabel("minutes since commit (modelled)")
    legend = [Patch(color=c, label=l) for l, c in COLOURS.items()] + [Patch(color="#4dac26", label="work")]
    axes[0].legend(handles=legend, fontsize=7, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format=path.suffix.lstrip(".") or "svg", metadata={"Date": None} if path.suffix == ".svg" else None)
    plt.close(fig)
