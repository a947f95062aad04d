import json
import re
from pathlib import Path

import botocore.session
import pytest
from botocore import xform_name

pytestmark = pytest.mark.xdist_group("scripts")

ROOT = Path(__file__).resolve().parents[2]
TABLES = [
    ROOT / "pipeline" / "scripts" / "iam_calls.json",
    ROOT / "stages" / "functions" / "remediation" / "iam_calls.json",
]
PRINCIPALS = {"pipeline", "verifier", "remediation"}
RESOURCES = {"service", "service-deployment", "service-revision", "repository", "stack", "topic", "alarm", "role",
             "table", "key", "*"}
ENTRIES = [
    (table, name, entry)
    for table in TABLES
    for name, entries in json.loads(table.read_text()).items()
    for entry in entries
]


@pytest.mark.parametrize(("table", "name", "entry"), ENTRIES, ids=[f"{n}:{e['operation']}" for _, n, e in ENTRIES])
def test_each_entry_is_a_real_operation_its_file_calls(table, name, entry):
    service, operation = entry["operation"].split(":")
    # the botocore service model is what the SDK signs and sends
    assert operation in botocore.session.get_session().get_service_model(service).operation_names
    source = (table.parent / name).read_text()
    assert f".{xform_name(operation)}(" in source, f"{name} does not call {operation}"
    assert entry["principal"] in PRINCIPALS
    assert entry["resource"] in RESOURCES
    assert entry["actions"] and all(re.fullmatch(r"[a-z0-9-]+:[A-Za-z0-9]+", a) for a in entry["actions"])
    assert entry["when"].strip()


def test_enhanced_scan_findings_list_the_inspector_actions_they_need():
    # ECR: reading findings with ecr:DescribeImageScanFindings under enhanced scanning also needs
    # inspector2:ListFindings and inspector2:ListCoverage
    entries = [
        e for _, n, e in ENTRIES if n == "image_scan_gate.py" and e["operation"] == "ecr:DescribeImageScanFindings"
    ]
    actions = {a for e in entries for a in e["actions"]}
    assert {"ecr:DescribeImageScanFindings", "inspector2:ListFindings", "inspector2:ListCoverage"} <= actions


def test_the_lifecycle_hook_calls_no_aws_api():
    for source in (ROOT / "smoke").glob("*.py"):
        text = source.read_text()
        assert "boto3" not in text and "botocore" not in text, source.name
    assert not (ROOT / "smoke" / "iam_calls.json").exists()
