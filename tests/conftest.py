import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# aws-cdk-lib's built-in template validator only warns with our flags (validateAgainstDefaultRules is false), so in
# tests it would cost seconds per synthesis and decide nothing: cfn-lint checks every template and fails on any
# finding (tests/infra/test_compliance.py). It runs where deploys come from: `make deploy` and the pipeline's build.
# Set before aws_cdk is imported anywhere: jsii's node process reads it from the environment it starts with.
os.environ.setdefault("CDK_VALIDATION", "false")
