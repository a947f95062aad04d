"""Every AWS call the code that runs in AWS makes during these tests must be in the IAM call table kept beside it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from botocore.client import BaseClient

ROOT = Path(__file__).resolve().parents[2]
# code that runs in AWS → the table of the calls it makes (smoke/ has none: the hook calls no AWS API)
TABLES = {
    ROOT / "pipeline" / "scripts": ROOT / "pipeline" / "scripts" / "iam_calls.json",
    ROOT / "stages" / "functions" / "remediation": ROOT / "stages" / "functions" / "remediation" / "iam_calls.json",
    ROOT / "smoke": ROOT / "smoke" / "iam_calls.json",
    ROOT / "pipeline" / "functions" / "alarm_gate": ROOT / "pipeline" / "functions" / "alarm_gate" / "iam_calls.json",
}


def load_table(path: Path) -> dict[str, list[dict[str, object]]]:
    return json.loads(path.read_text()) if path.exists() else {}


def _caller() -> tuple[Path, str] | None:
    """The tracked source file nearest to the API call on the stack, if any."""
    frame = sys._getframe(2)
    while frame is not None:
        path = Path(frame.f_code.co_filename).resolve()
        if path.parent in TABLES:
            return path.parent, path.name
        frame = frame.f_back
    return None


@pytest.fixture(autouse=True)
def aws_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    recorded: list[tuple[Path, str, str]] = []
    seen: list[tuple[str, str]] = []
    original = BaseClient._make_api_call

    def recording(self: BaseClient, operation_name: str, api_params: dict) -> dict:
        caller = _caller()
        if caller is not None:
            operation = f"{self.meta.service_model.service_name}:{operation_name}"
            recorded.append((caller[0], caller[1], operation))
            seen.append((caller[1], operation))
        return original(self, operation_name, api_params)

    monkeypatch.setattr(BaseClient, "_make_api_call", recording)
    yield seen
    missing = []
    for directory, name, operation in recorded:
        tabled = {entry["operation"] for entry in load_table(TABLES[directory]).get(name, [])}
        if operation not in tabled:
            missing.append(f"{name}: {operation} (add it to {TABLES[directory].relative_to(ROOT)})")
    if missing:
        pytest.fail("AWS calls missing from the IAM call tables: " + "; ".join(sorted(set(missing))))
