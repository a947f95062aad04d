"""Check: CodeBuild offers Lambda compute in the pipeline's Region (self-mutation, the IAM-broadening check and every
Verify run on it: pipeline/compute.py).

No API answers this: the CodeBuild User Guide lists the Regions ("Which Regions support AWS Lambda compute in
CodeBuild?", https://docs.aws.amazon.com/codebuild/latest/userguide/lambda.html). A Region outside that list is
reported as not checkable, not as a failure: AWS adds Regions.
"""

from __future__ import annotations

from tools.preflight.results import Result, passed, unchecked

LAMBDA_COMPUTE_REGIONS = frozenset(
    {
        "us-east-1",
        "us-east-2",
        "us-west-2",
        "ap-south-1",
        "ap-southeast-1",
        "ap-southeast-2",
        "ap-northeast-1",
        "eu-central-1",
        "eu-west-1",
        "sa-east-1",
    }
)
DOCS = "https://docs.aws.amazon.com/codebuild/latest/userguide/lambda.html"


def check_lambda_compute_region(region: str) -> Result:
    what = f"CodeBuild Lambda compute in {region} (self-mutation, IAM-broadening check, Verify)"
    if region in LAMBDA_COMPUTE_REGIONS:
        return passed(what)
    return unchecked(
        what,
        f"{region} is not among the Regions the CodeBuild User Guide lists for it ({', '.join(sorted(LAMBDA_COMPUTE_REGIONS))}); "
        f"check {DOCS}: without it those actions fail to start",
    )
