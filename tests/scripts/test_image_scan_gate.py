import importlib.util
import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

pytestmark = pytest.mark.xdist_group("scripts")

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "pipeline" / "scripts" / "image_scan_gate.py"
_spec = importlib.util.spec_from_file_location("image_scan_gate_under_test", SCRIPT)
gate = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = gate
_spec.loader.exec_module(gate)

REGION = "eu-west-1"
ACCOUNT = "123456789012"
REPOSITORY = f"cdk-hnb659fds-container-assets-{ACCOUNT}-{REGION}"
TAG = "3f1c2b9a8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a"
IMAGE = f"{REPOSITORY}:{TAG}"
DIGEST = "sha256:" + "ab" * 32
T0 = datetime(2026, 11, 27, 8, 0, tzinfo=timezone.utc)
PUSHED = T0 - timedelta(minutes=5)
IMAGE_ARN = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{REPOSITORY}/{DIGEST}"
ARGS = ["--repository", REPOSITORY, "--tag", TAG, "--timeout", "600", "--interval", "10"]
DESCRIBE = {"repositoryName": REPOSITORY, "imageId": {"imageTag": TAG}, "maxResults": gate.PAGE_SIZE}
START = {"repositoryName": REPOSITORY, "imageId": {"imageTag": TAG}}
IMAGES = {"repositoryName": REPOSITORY, "imageIds": [{"imageTag": TAG}]}
COVERAGE = {
    "filterCriteria": {
        "resourceType": [{"comparison": "EQUALS", "value": "AWS_ECR_CONTAINER_IMAGE"}],
        "resourceId": [{"comparison": "EQUALS", "value": IMAGE_ARN}],
    }
}


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def basic_finding(name, severity, package="openssl", version="3.0.1", score=None):
    attributes = [{"key": "package_name", "value": package}, {"key": "package_version", "value": version}]
    if score is not None:
        attributes.append({"key": "CVSS3_SCORE", "value": str(score)})
    return {
        "name": name,
        "description": f"{name} long description that must never be printed " * 3,
        "uri": f"https://security-tracker.debian.org/tracker/{name}",
        "severity": severity,
        "attributes": attributes,
    }


def enhanced_finding(cve, severity, package="requests", version="2.25.0", score=7.5):
    return {
        "awsAccountId": ACCOUNT,
        "description": f"{cve} description that must never be printed",
        "findingArn": f"arn:aws:inspector2:{REGION}:{ACCOUNT}:finding/{cve.lower()}",
        "firstObservedAt": T0,
        "lastObservedAt": T0,
        "packageVulnerabilityDetails": {
            "vulnerabilityId": cve,
            "source": "NVD",
            "sourceUrl": f"https://nvd.nist.gov/vuln/detail/{cve}",
            "vulnerablePackages": [
                {"name": package, "version": version, "packageManager": "PYTHONPKG", "fixedInVersion": "2.31.0"}
            ],
        },
        "remediation": {"recommendation": {"text": "upgrade"}},
        "score": score,
        "severity": severity,
        "status": "ACTIVE",
        "title": f"{cve} - {package}",
        "type": "PACKAGE_VULNERABILITY",
        "updatedAt": T0,
    }


def scan_response(status, *, counts=None, findings=None, enhanced=None, description=None, next_token=None,
                  with_findings=True, completed=T0):
    response = {
        "registryId": ACCOUNT,
        "repositoryName": REPOSITORY,
        "imageId": {"imageDigest": DIGEST, "imageTag": TAG},
        "imageScanStatus": {"status": status},
    }
    if description:
        response["imageScanStatus"]["description"] = description
    if with_findings:
        scan = {"imageScanCompletedAt": completed, "vulnerabilitySourceUpdatedAt": T0}
        if counts is not None:
            scan["findingSeverityCounts"] = counts
        if findings is not None:
            scan["findings"] = findings
        if enhanced is not None:
            scan["enhancedFindings"] = enhanced
        response["imageScanFindings"] = scan
    if next_token:
        response["nextToken"] = next_token
    return response


def scan_not_found(stubber):
    stubber.add_client_error(
        "describe_image_scan_findings",
        service_error_code="ScanNotFoundException",
        service_message=f"Image scan does not exist for the image with '{{imageTag:'{TAG}'}}'",
        http_status_code=400,
        expected_params=DESCRIBE,
    )


def image_detail(*, status="ACTIVE", pushed=PUSHED):
    return {
        "registryId": ACCOUNT,
        "repositoryName": REPOSITORY,
        "imageDigest": DIGEST,
        "imageTags": [TAG],
        "imageSizeInBytes": 52_000_000,
        "imagePushedAt": pushed,
        "imageManifestMediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "imageStatus": status,
    }


def expect_start_of_run(stubber, *, scan_type="BASIC", image=None):
    """The first poll reads the registry's scanning configuration and the image's push time and status."""
    rules = [{"scanFrequency": "SCAN_ON_PUSH", "repositoryFilters": [{"filter": "*", "filterType": "WILDCARD"}]}]
    stubber.add_response(
        "get_registry_scanning_configuration",
        {"registryId": ACCOUNT, "scanningConfiguration": {"scanType": scan_type, "rules": rules}},
        {},
    )
    stubber.add_response("describe_images", {"imageDetails": [image or image_detail()]}, IMAGES)


def covered(reason="SUCCESSFUL", *, code="ACTIVE", scanned=T0):
    resource = {
        "resourceType": "AWS_ECR_CONTAINER_IMAGE",
        "resourceId": IMAGE_ARN,
        "accountId": ACCOUNT,
        "scanType": "PACKAGE",
        "scanStatus": {"statusCode": code, "reason": reason},
        "resourceMetadata": {
            "ecrRepository": {"name": REPOSITORY, "scanFrequency": "SCAN_ON_PUSH"},
            "ecrImage": {"tags": [TAG]},
        },
    }
    if scanned is not None:
        resource["lastScannedAt"] = scanned
    return {"coveredResources": [resource]}


@pytest.fixture
def ecr():
    client = boto3.client("ecr", region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


@pytest.fixture
def inspector():
    client = boto3.client("inspector2", region_name=REGION, aws_access_key_id="testing",
                          aws_secret_access_key="testing")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def run(client, capsys, argv=ARGS, inspector=None):
    clock = FakeClock()
    code = gate.main(argv, ecr=client, inspector=inspector, sleep=clock.sleep, clock=clock.monotonic)
    out = capsys.readouterr()
    return code, out.out + out.err, clock


def test_clean_image_passes_without_polling(ecr, capsys):
    client, stubber = ecr
    expect_start_of_run(stubber)
    stubber.add_response(
        "describe_image_scan_findings",
        scan_response("COMPLETE", counts={"LOW": 2}, findings=[basic_finding("CVE-2025-0001", "LOW")] * 2),
        DESCRIBE,
    )
    code, out, clock = run(client, capsys)
    assert code == gate.EXIT_OK
    assert f"PASS: {IMAGE} basic scan COMPLETE: LOW 2; within thresholds; scanned {T0.isoformat()}" in out
    assert clock.sleeps == []


def test_image_with_no_findings_at_all_passes(ecr, capsys):
    client, stubber = ecr
    expect_start_of_run(stubber)
    stubber.add_response("describe_image_scan_findings", scan_response("COMPLETE", counts={}, findings=[]), DESCRIBE)
    code, out, _ = run(client, capsys)
    assert code == gate.EXIT_OK
    assert "no findings; within thresholds" in out


def test_critical_finding_fails_and_names_it(ecr, capsys):
    client, stubber = ecr
    expect_start_of_run(stubber)
    stubber.add_response(
        "describe_image_scan_findings",
        scan_response(
            "COMPLETE",
            counts={"CRITICAL": 1, "HIGH": 1, "MEDIUM": 3},
            findings=[
                basic_finding("CVE-2025-1111", "MEDIUM", package="zlib", version="1.2.11"),
                basic_finding("CVE-2025-2222", "HIGH", package="curl", version="7.74.0"),
                basic_finding("CVE-2025-9999", "CRITICAL", package="openssl", version="3.0.1", score=9.8),
                basic_finding("CVE-2025-3333", "MEDIUM", package="zlib", version="1.2.11"),
                basic_finding("CVE-2025-4444", "MEDIUM", package="zlib", version="1.2.11"),
            ],
        ),
        DESCRIBE,
    )
    code, out, clock = run(client, capsys)
    assert code == gate.EXIT_FAILED
    assert f"FAIL: {IMAGE} basic scan COMPLETE has findings over threshold: CRITICAL 1 > max 0" in out
    # one line per severity, thresholds shown, the offending one flagged
    assert "  CRITICAL          1  (max 0)  OVER" in out
    assert "  HIGH              1  (max 5)\n" in out
    assert "  MEDIUM            3\n" in out
    # the worst finding first, with package and link; never the raw response
    assert "top 5 findings:" in out
    top = [line for line in out.splitlines() if line.startswith("    - ")]
    assert top[0] == (
        "    - CVE-2025-9999 CRITICAL openssl 3.0.1 https://security-tracker.debian.org/tracker/CVE-2025-9999"
    )
    assert top[1].startswith("    - CVE-2025-2222 HIGH curl 7.74.0")
    assert len(top) == 5
    assert "must never be printed" not in out and "imageScanFindings" not in out
    assert clock.sleeps == []


@pytest.mark.parametrize(
    ("high", "expected"),
    [(5, gate.EXIT_OK), (6, gate.EXIT_FAILED)],
    ids=["at-threshold-passes", "over-threshold-fails"],
)
def test_high_count_is_allowed_up_to_the_threshold(ecr, capsys, high, expected):
    client, stubber = ecr
    expect_start_of_run(stubber)
    findings = [basic_finding(f"CVE-2025-{n:04d}", "HIGH") for n in range(high)]
    stubber.add_response(
        "describe_image_scan_findings", scan_response("COMPLETE", counts={"HIGH": high}, findings=findings), DESCRIBE
    )
    code, out, _ = run(client, capsys, ARGS + ["--max-high", "5"])
    assert code == expected
    if expected == gate.EXIT_FAILED:
        assert "over threshold: HIGH 6 > max 5" in out
        assert "  HIGH              6  (max 5)  OVER" in out
        assert len([line for line in out.splitlines() if line.startswith("    - ")]) == gate.TOP_FINDINGS


def test_thresholds_are_configurable(ecr, capsys):
    client, stubber = ecr
    expect_start_of_run(stubber)
    stubber.add_response(
        "describe_image_scan_findings",
        scan_response("COMPLETE", counts={"CRITICAL": 1, "HIGH": 1}, findings=[]),
        DESCRIBE,
    )
    code, out, _ = run(client, capsys, ARGS + ["--max-critical", "1", "--max-high", "0"])
    assert code == gate.EXIT_FAILED
    assert "over threshold: HIGH 1 > max 0" in out and "CRITICAL 1 >" not in out


def test_scan_in_progress_then_complete_keeps_polling_and_passes(ecr, capsys):
    client, stubber = ecr
    expect_start_of_run(stubber)
    for _ in range(2):
        stubber.add_response("describe_image_scan_findings",
                             scan_response("IN_PROGRESS", with_findings=False), DESCRIBE)
    stubber.add_response("describe_image_scan_findings", scan_response("COMPLETE", counts={}), DESCRIBE)
    code, out, clock = run(client, capsys)
    assert code == gate.EXIT_OK
    assert clock.sleeps == [10.0, 10.0]
    # an unchanged state is logged once, not on every poll
    assert out.count(f"waiting: scan of {IMAGE} is IN_PROGRESS") == 1


def test_scan_not_found_starts_one_basic_scan_and_waits_for_it(ecr, capsys):
    client, stubber = ecr
    expect_start_of_run(stubber)
    scan_not_found(stubber)
    stubber.add_response(
        "start_image_scan",
        {"registryId": ACCOUNT, "repositoryName": REPOSITORY, "imageId": {"imageTag": TAG},
         "imageScanStatus": {"status": "IN_PROGRESS"}},
        START,
    )
    # the scan is not visible yet: StartImageScan must not be called a second time
    scan_not_found(stubber)
    stubber.add_response("describe_image_scan_findings", scan_response("IN_PROGRESS", with_findings=False), DESCRIBE)
    stubber.add_response("describe_image_scan_findings", scan_response("COMPLETE", counts={"MEDIUM": 1}), DESCRIBE)
    code, out, clock = run(client, capsys)
    assert code == gate.EXIT_OK
    assert f"waiting: started a basic scan of {IMAGE}; no scan result yet" in out
    assert f"waiting: scan of {IMAGE} is IN_PROGRESS" in out
    assert "PASS" in out and "MEDIUM 1" in out
    assert clock.sleeps == [10.0, 10.0, 10.0]


def test_a_basic_scan_from_before_the_push_is_not_evidence_a_new_scan_is(ecr, capsys):
    client, stubber = ecr
    # ImageScanFindings.imageScanCompletedAt: "The time of the last completed image scan"; the same digest pushed
    # again later keeps the old result
    expect_start_of_run(stubber, image=image_detail(pushed=T0 + timedelta(hours=1)))
    stubber.add_response("describe_image_scan_findings",
                         scan_response("COMPLETE", counts={}, completed=T0), DESCRIBE)
    stubber.add_response("start_image_scan", {"registryId": ACCOUNT, "repositoryName": REPOSITORY,
                                              "imageId": {"imageTag": TAG},
                                              "imageScanStatus": {"status": "IN_PROGRESS"}}, START)
    stubber.add_response("describe_image_scan_findings",
                         scan_response("COMPLETE", counts={}, completed=T0 + timedelta(hours=1, minutes=1)), DESCRIBE)
    code, out, clock = run(client, capsys)
    assert code == gate.EXIT_OK, out
    assert "is not from after the push" in out and "started a new basic scan" in out
    assert clock.sleeps == [10.0]


def test_a_stale_basic_scan_that_cannot_be_repeated_today_times_out_saying_why(ecr, capsys):
    client, stubber = ecr
    # StartImageScan: "A basic image scan can only be started once per 24 hours on an individual image"
    argv = ARGS[:-4] + ["--timeout", "20", "--interval", "10"]
    expect_start_of_run(stubber, image=image_detail(pushed=T0 + timedelta(hours=1)))
    stubber.add_response("describe_image_scan_findings", scan_response("COMPLETE", counts={}), DESCRIBE)
    stubber.add_client_error("start_image_scan", service_error_code="LimitExceededException",
                             service_message="The scan quota per image has been exceeded. Wait and try again.",
                             http_status_code=400, expected_params=START)
    for _ in range(2):
        stubber.add_response("describe_image_scan_findings", scan_response("COMPLETE", counts={}), DESCRIBE)
    code, out, _ = run(client, capsys, argv)
    assert code == gate.EXIT_TIMEOUT
    assert "is not from after the push" in out
    assert "StartImageScan refused (LimitExceededException: The scan quota per image has been exceeded" in out


def test_enhanced_active_with_no_findings_waits_for_inspector_to_have_scanned_the_image(ecr, inspector, capsys):
    client, stubber = ecr
    inspector_api, inspector_stub = inspector
    # ECR reports ACTIVE for an enhanced-scanning image before Amazon Inspector has any findings for it;
    # Inspector coverage "PENDING_INITIAL_SCAN - This resource has been identified for scanning, results will be
    # available soon"
    expect_start_of_run(stubber, scan_type="ENHANCED")
    stubber.add_response("describe_image_scan_findings",
                         scan_response("ACTIVE", description="Continuous scan is selected for image.", counts={}),
                         DESCRIBE)
    inspector_stub.add_response("list_coverage", covered("PENDING_INITIAL_SCAN", scanned=None), COVERAGE)
    stubber.add_response("describe_image_scan_findings",
                         scan_response("ACTIVE", counts={"MEDIUM": 2}), DESCRIBE)
    inspector_stub.add_response("list_coverage", covered("SUCCESSFUL", scanned=T0), COVERAGE)
    code, out, clock = run(client, capsys, inspector=inspector_api)
    assert code == gate.EXIT_OK, out
    assert f"waiting: Inspector coverage of {IMAGE} is ACTIVE/PENDING_INITIAL_SCAN" in out
    assert f"PASS: {IMAGE} enhanced scan ACTIVE: MEDIUM 2; within thresholds; Inspector scanned it" in out
    assert clock.sleeps == [10.0]


def test_enhanced_coverage_reads_every_page(ecr, inspector, capsys):
    client, stubber = ecr
    inspector_api, inspector_stub = inspector
    expect_start_of_run(stubber, scan_type="ENHANCED")
    stubber.add_response("describe_image_scan_findings", scan_response("ACTIVE", counts={}), DESCRIBE)
    inspector_stub.add_response("list_coverage", {"coveredResources": [], "nextToken": "page-2"}, COVERAGE)
    inspector_stub.add_response("list_coverage", covered("SUCCESSFUL"), {**COVERAGE, "nextToken": "page-2"})
    code, out, _ = run(client, capsys, inspector=inspector_api)
    assert code == gate.EXIT_OK, out


@pytest.mark.parametrize(
    ("coverage", "waiting"),
    [
        ({"coveredResources": []}, f"Amazon Inspector does not list {IMAGE} in its coverage yet"),
        (covered("SUCCESSFUL", scanned=PUSHED - timedelta(days=1)), "is not from after the push"),
    ],
    ids=["not-covered-yet", "scanned-before-the-push"],
)
def test_enhanced_scan_without_inspector_evidence_does_not_pass(ecr, inspector, capsys, coverage, waiting):
    client, stubber = ecr
    inspector_api, inspector_stub = inspector
    argv = ARGS[:-4] + ["--timeout", "10", "--interval", "10"]
    expect_start_of_run(stubber, scan_type="ENHANCED")
    for _ in range(2):
        stubber.add_response("describe_image_scan_findings", scan_response("ACTIVE", counts={}), DESCRIBE)
        inspector_stub.add_response("list_coverage", coverage, COVERAGE)
    code, out, _ = run(client, capsys, argv, inspector=inspector_api)
    assert code == gate.EXIT_TIMEOUT
    assert waiting in out


def test_enhanced_coverage_that_lapsed_fails_with_what_to_do(ecr, inspector, capsys):
    client, stubber = ecr
    inspector_api, inspector_stub = inspector
    # Inspector: "SCAN_ELIGIBILITY_EXPIRED - The configured scan duration has lapsed for this image"
    expect_start_of_run(stubber, scan_type="ENHANCED", image=image_detail(pushed=T0 - timedelta(days=200)))
    stubber.add_response("describe_image_scan_findings", scan_response("ACTIVE", counts={}), DESCRIBE)
    inspector_stub.add_response("list_coverage", covered("SCAN_ELIGIBILITY_EXPIRED", code="INACTIVE"), COVERAGE)
    code, out, _ = run(client, capsys, inspector=inspector_api)
    assert code == gate.EXIT_FAILED
    assert f"Inspector does not scan {IMAGE}: coverage INACTIVE/SCAN_ELIGIBILITY_EXPIRED" in out
    assert "push it again (rebuild) or lengthen the duration" in out


def test_enhanced_findings_over_threshold_fail_without_waiting_for_coverage(ecr, inspector, capsys):
    client, stubber = ecr
    inspector_api, _ = inspector
    expect_start_of_run(stubber, scan_type="ENHANCED")
    stubber.add_response(
        "describe_image_scan_findings",
        scan_response(
            "ACTIVE",
            counts={"CRITICAL": 1, "HIGH": 1},
            enhanced=[
                enhanced_finding("CVE-2024-1000", "HIGH", package="urllib3", version="1.26.0", score=7.1),
                enhanced_finding("CVE-2024-2000", "CRITICAL", package="requests", version="2.25.0", score=9.1),
            ],
        ),
        DESCRIBE,
    )
    code, out, _ = run(client, capsys, inspector=inspector_api)
    assert code == gate.EXIT_FAILED
    assert "enhanced scan ACTIVE has findings over threshold: CRITICAL 1 > max 0" in out
    top = [line for line in out.splitlines() if line.startswith("    - ")]
    assert top == [
        "    - CVE-2024-2000 CRITICAL requests 2.25.0 https://nvd.nist.gov/vuln/detail/CVE-2024-2000",
        "    - CVE-2024-1000 HIGH urllib3 1.26.0 https://nvd.nist.gov/vuln/detail/CVE-2024-1000",
    ]
    assert "must never be printed" not in out


def test_enhanced_scan_not_found_waits_without_starting_a_basic_scan(ecr, capsys):
    client, stubber = ecr
    # StartImageScan "Starts a basic image vulnerability scan": no use under enhanced scanning
    argv = ARGS[:-4] + ["--timeout", "10", "--interval", "10"]
    expect_start_of_run(stubber, scan_type="ENHANCED")
    scan_not_found(stubber)
    scan_not_found(stubber)
    code, out, _ = run(client, capsys, argv)
    assert code == gate.EXIT_TIMEOUT
    assert "does a registry scan filter cover this repository?" in out


@pytest.mark.parametrize(
    ("status", "hint"),
    [
        ("FAILED", ""),
        ("UNSUPPORTED_IMAGE", ""),
        ("SCAN_ELIGIBILITY_EXPIRED", ": the image was pushed longer ago than the registry's enhanced-scanning"),
        ("LIMIT_EXCEEDED", ": ECR's scan limit for this image was reached"),
        ("FINDINGS_UNAVAILABLE", ": ECR has no findings for this image"),
    ],
)
def test_unscannable_status_fails_with_a_clear_message(ecr, capsys, status, hint):
    client, stubber = ecr
    expect_start_of_run(stubber, scan_type="ENHANCED")
    stubber.add_response(
        "describe_image_scan_findings",
        scan_response(status, description="The image could not be scanned.", with_findings=False),
        DESCRIBE,
    )
    code, out, clock = run(client, capsys)
    assert code == gate.EXIT_FAILED
    assert f"FAIL: image cannot be scanned: scan status {status} (The image could not be scanned.){hint}" in out
    assert "(pass --allow-unscannable to let it through)" in out
    assert clock.sleeps == []


def test_allow_unscannable_passes_a_failed_scan_with_a_warning(ecr, capsys, monkeypatch):
    client, stubber = ecr
    monkeypatch.setenv("IMAGE_SCAN_ALLOW_UNSCANNABLE", "true")
    expect_start_of_run(stubber)
    stubber.add_response("describe_image_scan_findings", scan_response("FAILED", with_findings=False), DESCRIBE)
    code, out, _ = run(client, capsys)
    assert code == gate.EXIT_OK
    assert "PASS: WARNING: image NOT scanned (scan status FAILED)" in out


def test_an_archived_image_fails_even_when_unscannable_images_are_allowed(ecr, capsys, monkeypatch):
    client, stubber = ecr
    monkeypatch.setenv("IMAGE_SCAN_ALLOW_UNSCANNABLE", "true")
    # DescribeImages imageStatus ARCHIVED: an archived image must be restored before it can be pulled
    expect_start_of_run(stubber, image=image_detail(status="ARCHIVED"))
    stubber.add_response("describe_image_scan_findings", scan_response("IMAGE_ARCHIVED", with_findings=False),
                         DESCRIBE)
    code, out, _ = run(client, capsys)
    assert code == gate.EXIT_FAILED
    assert f"image {IMAGE} is ARCHIVED: it can be neither scanned nor pulled by ECS" in out


def test_image_archived_scan_status_fails(ecr, capsys):
    client, stubber = ecr
    expect_start_of_run(stubber)
    stubber.add_response("describe_image_scan_findings", scan_response("IMAGE_ARCHIVED", with_findings=False),
                         DESCRIBE)
    code, out, _ = run(client, capsys)
    assert code == gate.EXIT_FAILED
    assert f"image {IMAGE} is archived (scan status IMAGE_ARCHIVED)" in out


def test_start_refused_for_an_archived_image_fails(ecr, capsys):
    client, stubber = ecr
    expect_start_of_run(stubber)
    scan_not_found(stubber)
    stubber.add_client_error("start_image_scan", service_error_code="ImageArchivedException",
                             service_message="The image is archived.", http_status_code=400, expected_params=START)
    code, out, _ = run(client, capsys)
    assert code == gate.EXIT_FAILED
    assert "is ARCHIVED" in out


def test_unsupported_image_type_on_start_fails(ecr, capsys):
    client, stubber = ecr
    expect_start_of_run(stubber)
    scan_not_found(stubber)
    stubber.add_client_error(
        "start_image_scan",
        service_error_code="UnsupportedImageTypeException",
        service_message="The image is of a type that cannot be scanned.",
        http_status_code=400,
        expected_params=START,
    )
    code, out, _ = run(client, capsys)
    assert code == gate.EXIT_FAILED
    assert "image cannot be scanned: UnsupportedImageTypeException" in out


def test_timeout_reports_the_last_state_seen(ecr, capsys):
    client, stubber = ecr
    argv = ARGS[:-4] + ["--timeout", "30", "--interval", "10"]
    expect_start_of_run(stubber)
    for _ in range(4):
        stubber.add_response("describe_image_scan_findings",
                             scan_response("IN_PROGRESS", with_findings=False), DESCRIBE)
    code, out, clock = run(client, capsys, argv)
    assert code == gate.EXIT_TIMEOUT
    assert clock.sleeps == [10.0, 10.0, 10.0]
    assert f"TIMEOUT after 30s (limit 30s); last state: scan of {IMAGE} is IN_PROGRESS" in out


def test_top_findings_come_from_every_page(ecr, capsys):
    client, stubber = ecr
    expect_start_of_run(stubber)
    first = scan_response(
        "COMPLETE",
        counts={"CRITICAL": 1, "MEDIUM": 2},
        findings=[basic_finding("CVE-2025-0001", "MEDIUM"), basic_finding("CVE-2025-0002", "MEDIUM")],
        next_token="page-2",
    )
    second = scan_response("COMPLETE", counts={"CRITICAL": 1, "MEDIUM": 2},
                           findings=[basic_finding("CVE-2025-0666", "CRITICAL", package="glibc")])
    stubber.add_response("describe_image_scan_findings", first, DESCRIBE)
    stubber.add_response("describe_image_scan_findings", second, {**DESCRIBE, "nextToken": "page-2"})
    code, out, _ = run(client, capsys)
    assert code == gate.EXIT_FAILED
    top = [line for line in out.splitlines() if line.startswith("    - ")]
    assert top[0].startswith("    - CVE-2025-0666 CRITICAL glibc")
    assert len(top) == 3


def test_image_not_found_fails(ecr, capsys):
    client, stubber = ecr
    stubber.add_response(
        "get_registry_scanning_configuration",
        {"registryId": ACCOUNT, "scanningConfiguration": {"scanType": "BASIC", "rules": []}},
        {},
    )
    stubber.add_client_error(
        "describe_images",
        service_error_code="ImageNotFoundException",
        service_message=f"The image with imageId {{imageTag:'{TAG}'}} does not exist",
        http_status_code=400,
        expected_params=IMAGES,
    )
    code, out, _ = run(client, capsys)
    assert code == gate.EXIT_FAILED
    assert f"FAIL: image {IMAGE} not found (ImageNotFoundException" in out


def test_aws_error_exits_4_with_the_api_message(ecr, capsys):
    client, stubber = ecr
    expect_start_of_run(stubber)
    stubber.add_client_error(
        "describe_image_scan_findings",
        service_error_code="AccessDeniedException",
        service_message="not authorized to perform: ecr:DescribeImageScanFindings",
        http_status_code=400,
        expected_params=DESCRIBE,
    )
    code, out, _ = run(client, capsys)
    assert code == gate.EXIT_AWS_ERROR
    assert "DescribeImageScanFindings failed: AccessDeniedException" in out


def test_arguments_fall_back_to_environment(ecr, capsys, monkeypatch):
    client, stubber = ecr
    monkeypatch.setenv("IMAGE_REPOSITORY", REPOSITORY)
    monkeypatch.setenv("IMAGE_TAG", TAG)
    monkeypatch.setenv("IMAGE_SCAN_MAX_HIGH", "0")
    expect_start_of_run(stubber)
    stubber.add_response("describe_image_scan_findings", scan_response("COMPLETE", counts={"HIGH": 1}), DESCRIBE)
    code, out, _ = run(client, capsys, [])
    assert code == gate.EXIT_FAILED
    assert "HIGH 1 > max 0" in out


def test_a_digest_is_looked_up_by_digest(ecr, capsys):
    client, stubber = ecr
    stubber.add_response(
        "get_registry_scanning_configuration",
        {"registryId": ACCOUNT, "scanningConfiguration": {"scanType": "BASIC", "rules": []}},
        {},
    )
    stubber.add_response("describe_images", {"imageDetails": [image_detail()]},
                         {"repositoryName": REPOSITORY, "imageIds": [{"imageDigest": DIGEST}]})
    stubber.add_response(
        "describe_image_scan_findings",
        scan_response("COMPLETE", counts={}),
        {"repositoryName": REPOSITORY, "imageId": {"imageDigest": DIGEST}, "maxResults": gate.PAGE_SIZE},
    )
    code, out, _ = run(client, capsys, ["--repository", REPOSITORY, "--tag", DIGEST])
    assert code == gate.EXIT_OK
    assert f"{REPOSITORY}@{DIGEST}" in out


def test_decide_counts_enhanced_findings_when_the_summary_map_is_absent():
    observation = gate.Observation(
        findings=scan_response("ACTIVE", enhanced=[enhanced_finding("CVE-2024-7777", "CRITICAL")])
    )
    verdict = gate.decide(IMAGE, observation, gate.Thresholds())
    assert verdict.state == gate.FAILED
    assert "CRITICAL 1 > max 0" in verdict.message


def test_decide_treats_an_unknown_status_as_unscannable():
    observation = gate.Observation(findings=scan_response("SOMETHING_NEW", with_findings=False))
    assert gate.decide(IMAGE, observation, gate.Thresholds()).state == gate.FAILED
    assert gate.decide(IMAGE, observation, gate.Thresholds(), allow_unscannable=True).state == gate.PASSED


def test_decide_never_passes_zero_findings_without_the_push_time():
    observation = gate.Observation(findings=scan_response("COMPLETE", counts={}), scan_type="BASIC")
    assert gate.decide(IMAGE, observation, gate.Thresholds()).state == gate.WAITING


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--repository", REPOSITORY], "missing --tag"),
        (["--tag", TAG], "missing --repository"),
        (["--repository", "Bad_Repo!", "--tag", TAG], "is not an ECR repository name"),
        (["--repository", REPOSITORY, "--tag", f"{REPOSITORY}:{TAG}"], "not repository:tag"),
        (["--repository", REPOSITORY, "--tag", "sha256:xyz"], "is not an image digest"),
        (ARGS + ["--max-critical", "-1"], "must be 0 or more"),
        (ARGS + ["--max-high", "five"], "not a whole number"),
        (ARGS + ["--timeout", "0"], "must be positive"),
    ],
)
def test_bad_arguments_exit_2(argv, message, capsys, monkeypatch):
    for name in ("IMAGE_REPOSITORY", "IMAGE_TAG"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SystemExit) as exited:
        gate.main(argv, ecr=object())
    assert exited.value.code == gate.EXIT_USAGE
    assert message in capsys.readouterr().err


def test_bad_threshold_in_environment_exits_2(capsys, monkeypatch):
    monkeypatch.setenv("IMAGE_SCAN_MAX_CRITICAL", "none")
    with pytest.raises(SystemExit) as exited:
        gate.main(ARGS, ecr=object())
    assert exited.value.code == gate.EXIT_USAGE
    assert "not a whole number" in capsys.readouterr().err


def test_cli_without_required_arguments_exits_2():
    env = {"PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--repository", REPOSITORY], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 2
    assert "missing --tag" in result.stderr


def assumed(access_key, expiration):
    return {
        "Credentials": {
            "AccessKeyId": access_key,
            "SecretAccessKey": f"secret-of-{access_key}",
            "SessionToken": f"token-of-{access_key}",
            "Expiration": expiration,
        },
        "AssumedRoleUser": {
            "AssumedRoleId": "AROAEXAMPLE:image-scan-gate",
            "Arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/notes-web-dev-deploy-verifier/image-scan-gate",
        },
    }


ROLE = f"arn:aws:iam::{ACCOUNT}:role/notes-web-dev-deploy-verifier"
ASSUME = {"RoleArn": ROLE, "RoleSessionName": "image-scan-gate", "DurationSeconds": 3600}


def test_role_is_assumed_and_both_clients_sign_with_its_credentials(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    stubbers = []
    real_client = boto3.Session.client

    def client(self, service_name, *args, **kwargs):
        made = real_client(self, service_name, *args, **kwargs)
        if service_name == "sts":
            stubber = Stubber(made)
            stubber.add_response("assume_role", assumed("ASIAASSUMEDROLEKEY01",
                                                        datetime.now(timezone.utc) + timedelta(hours=1)), ASSUME)
            stubber.activate()
            stubbers.append(stubber)
        return made

    monkeypatch.setattr(boto3.Session, "client", client)
    ecr, inspector = gate.clients(REGION, ROLE)
    assert len(stubbers) == 1
    stubbers[0].assert_no_pending_responses()
    for made in (ecr, inspector):
        credentials = made._request_signer._credentials.get_frozen_credentials()
        assert credentials.access_key == "ASIAASSUMEDROLEKEY01"
        assert credentials.secret_key == "secret-of-ASIAASSUMEDROLEKEY01"
        assert credentials.token == "token-of-ASIAASSUMEDROLEKEY01"
    assert ecr.meta.region_name == REGION and inspector.meta.service_model.service_name == "inspector2"


def test_assumed_role_credentials_renew_before_they_expire(monkeypatch):
    # a chained role session lasts at most one hour; a prod rollout can be waited on for longer
    sts = boto3.client("sts", region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")
    with Stubber(sts) as stubber:
        stubber.add_response("assume_role", assumed("ASIAFIRSTSESSION0001",
                                                    datetime.now(timezone.utc) + timedelta(minutes=2)), ASSUME)
        stubber.add_response("assume_role", assumed("ASIASECONDSESSION001",
                                                    datetime.now(timezone.utc) + timedelta(hours=1)), ASSUME)
        session = gate.assumed_session(region=REGION, role_arn=ROLE, session_name="image-scan-gate", sts=sts)
        credentials = session.client("ecr")._request_signer._credentials.get_frozen_credentials()
        stubber.assert_no_pending_responses()
    assert credentials.access_key == "ASIASECONDSESSION001"


def test_cli_assumes_the_role_and_gates_through_real_clients(monkeypatch, capsys):
    from moto import mock_aws

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        ecr = boto3.client("ecr", region_name=REGION)
        ecr.create_repository(repositoryName=REPOSITORY, imageScanningConfiguration={"scanOnPush": False})
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 7023,
                       "digest": "sha256:" + "cd" * 32},
            "layers": [],
        }
        ecr.put_image(repositoryName=REPOSITORY, imageManifest=json.dumps(manifest), imageTag=TAG)
        argv = ["--repository", REPOSITORY, "--tag", TAG, "--region", REGION, "--role-arn", ROLE,
                "--interval", "1"]
        clock = FakeClock()
        # no scan yet (no scan on push): the gate starts one; moto then reports a single HIGH finding
        assert gate.main(argv, sleep=clock.sleep, clock=clock.monotonic) == gate.EXIT_OK
        out = capsys.readouterr().out
        assert f"role={ROLE}" in out and "started a basic scan" in out and "PASS" in out and "HIGH 1" in out
