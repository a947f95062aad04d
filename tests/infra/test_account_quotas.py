"""What a brand-new account allows, held against the whole assembly."""

from __future__ import annotations

import pytest

from tests.infra.cfn_model import Assembly

pytestmark = pytest.mark.xdist_group("infra")


def test_no_function_reserves_concurrency(assembly_dir):
    # Lambda keeps at least 10 concurrent executions unreserved ("Configuring reserved concurrency"), and a new
    # account's concurrency quota can be 10: any reservation would fail the first deploy there.
    assembly = Assembly.load(assembly_dir)
    functions = list(assembly.resources("AWS::Lambda::Function"))
    assert functions
    reserving = [f"{stack.name}/{logical_id}" for stack, logical_id, f in functions
                 if "ReservedConcurrentExecutions" in f.get("Properties", {})]
    assert not reserving
