import json

import pytest

from report import model
from report.__main__ import main
from report.render import fmt
from tests.report.fixtures import pipeline_template, service_template, stateful_template

pytestmark = pytest.mark.xdist_group("report")


def write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")


def stack(template_file, stack_name):
    return {"type": "aws:cloudformation:stack",
            "properties": {"templateFile": template_file, "stackName": stack_name}}


def make_assembly(root):
    artifacts = {"pipeline": stack("pipeline.template.json", "app-pipeline")}
    write(root / "pipeline.template.json", pipeline_template())
    for stage, kwargs in (("Dev", {}), ("Prod", {"strategy": "CANARY", "min_percent": 100, "max_percent": 200,
                                                 "bake": 10, "rates": True})):
        directory = f"assembly-app-{stage}"
        artifacts[directory] = {"type": "cdk:cloud-assembly",
                                "properties": {"directoryName": directory, "displayName": f"app/{stage}"}}
        low = stage.lower()
        write(root / directory / "manifest.json", {"artifacts": {
            "Stateful": stack("stateful.template.json", f"app-{low}-stateful"),
            "Stateless": stack("stateless.template.json", f"app-{low}-stateless"),
            "Stateless.assets": {"type": "cdk:asset-manifest", "properties": {"file": "stateless.assets.json"}},
        }})
        write(root / directory / "stateful.template.json", stateful_template())
        write(root / directory / "stateless.template.json", service_template(**kwargs))
        write(root / directory / "stateless.assets.json", {"files": {"f1": {}, "f2": {}}, "dockerImages": {"d": {}}})
    write(root / "manifest.json", {"artifacts": artifacts})


def test_missing_assembly_exits_2_with_one_line(tmp_path, capsys):
    missing = tmp_path / "cdk.out"
    assert main([str(missing), "--out", str(tmp_path / "r.md")]) == 2
    err = capsys.readouterr().err
    assert err == f"report: no cloud assembly at {missing}: run `make synth` first\n"
    assert not (tmp_path / "r.md").exists()


def test_bad_assembly_exits_2(tmp_path, capsys):
    (tmp_path / "manifest.json").write_text("{not json", encoding="utf-8")
    assert main([str(tmp_path), "--out", str(tmp_path / "r.md")]) == 2
    assert capsys.readouterr().err.startswith(f"report: no cloud assembly at {tmp_path}:")


def test_assembly_without_pipeline_exits_2(tmp_path):
    write(tmp_path / "manifest.json", {"artifacts": {"s": stack("s.json", "s")}})
    write(tmp_path / "s.json", stateful_template())
    assert main([str(tmp_path), "--out", str(tmp_path / "r.md")]) == 2


def test_reader_and_renderer_write_report_and_picture(tmp_path):
    make_assembly(tmp_path / "cdk.out")
    out = tmp_path / "docs" / "report.md"
    assert main([str(tmp_path / "cdk.out"), "--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    for heading in ("## 1. Critical path", "### Before and after the lead-time levers", "### Revert path", "### Assumptions", "## 2. Same app with CDK Pipelines defaults",
                    "## 3. Rollback, replacement, approvals and bake", "## 4. Modelled monthly cost",
                    "### Dev", "### Prod", "verify before budgeting"):
        assert heading in text
    # The same numbers as the model tests: 2024 s = 1004 s work + 1020 s bakes and gates with 240 s of build work;
    # revert 1935 s.
    # (and 30 s of Verify work on the path).
    extra = model.BUILD_INSTALL_S + model.BUILD_SYNTH_S + model.BUILD_TESTS_S - 240 + model.VERIFY_WORK_S - 30
    work, total, revert = fmt(1004 + extra), fmt(2024 + extra), fmt(1935 + extra)
    assert f"**{work} of work** + **17 min 00 s of bakes and gates** = **{total}** in total" in text
    assert f"commit → prod (no human waits): {total}**" in text
    assert f"| **total** | **{total}** | **{revert}** |" in text
    # Before the levers, Verify-dev started on standard compute (85 s more) and pip byte-compiled the lock.
    saved = 85 + model.PIP_COMPILE_S
    assert f"| **commit → prod work** | | **{fmt(1004 + extra + saved)}** | **{work}** | **−{fmt(saved)}** |" in text
    assert "Prod canary step bake (traffic held at 10 %) 2 min 00 s; Prod post-rollout bake 10 min 00 s" in text
    assert "| fast **(fastest)** | 10 s | 2/3 | 1 min 50 s |" in text
    assert "Bad canary at 10 % traffic: rollback decision ≤ 5 min 00 s, canary step bake 2 min 00 s" in text
    assert "| 5 % | 0.5 % / 1 % | 5 % / 1 % ✓ | ≤ 5 min 00 s |" in text
    assert "![Modelled pipeline timeline](pipeline-timeline.svg)" in text
    picture = tmp_path / "docs" / "pipeline-timeline.svg"
    assert picture.read_text(encoding="utf-8").lstrip().startswith("<?xml")


def test_png_picture(tmp_path):
    make_assembly(tmp_path / "cdk.out")
    picture = tmp_path / "t.png"
    assert main([str(tmp_path / "cdk.out"), "--out", str(tmp_path / "r.md"), "--picture", str(picture)]) == 0
    assert picture.read_bytes().startswith(b"\x89PNG")
