"""Pre-deploy gate: stop promotion when the container image's vulnerability scan has too many findings.

CDK publishes the image to the environment account's bootstrap ECR repository, tagged with the asset hash, before
the environment is deployed; this step asks ECR for that image's scan results. Works with basic scanning (status
COMPLETE) and enhanced scanning by Amazon Inspector (status ACTIVE, findings under `enhancedFindings`); the gate
reads `findingSeverityCounts` and only walks the finding pages to name the worst findings.

Too many findings fail at once. "Few enough" (zero included) passes only on evidence that the image was scanned
after it was pushed: a basic scan completed after the push, or, with enhanced scanning, Inspector's coverage of
the image showing a successful scan after the push (ECR reports ACTIVE before Inspector has any findings). When
basic scanning has no scan for the image (or only one older than the push) it starts one, once, and waits for it.
An archived image fails (ECS cannot pull it either). Runs in a CodeBuild step with boto3.

Exit codes: 0 passed, 1 findings over threshold or image not scannable, 2 bad arguments, 3 timed out,
4 AWS API error.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

# Run as a file in CodeBuild (and loaded by path in tests): the shared sibling module sits next to it.
sys.path.insert(0, str(Path(__file__).resolve().parent))
# Exit codes are part of each script's interface (documented in its --help), hence re-exported.
from aws_session import (  # noqa: E402, F401
    EXIT_AWS_ERROR,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    Outcome,
    add_polling_arguments,
    assumed_session,
    check_polling_arguments,
    client_config,
    env,
    run_check,
)

PASSED = "passed"
FAILED = "failed"
WAITING = "waiting"

READY_STATUSES = frozenset({"COMPLETE", "ACTIVE"})  # basic scan finished / Inspector watches the image
PENDING_STATUSES = frozenset({"IN_PROGRESS", "PENDING"})
# every other status (FAILED, UNSUPPORTED_IMAGE, SCAN_ELIGIBILITY_EXPIRED, FINDINGS_UNAVAILABLE, LIMIT_EXCEEDED,
# IMAGE_ARCHIVED, IMAGE_SIZE_EXCEEDED, and any status added later) means no findings will come: "unscannable"
UNSCANNABLE_HINTS = {
    "SCAN_ELIGIBILITY_EXPIRED": "the image was pushed longer ago than the registry's enhanced-scanning duration, so "
    "Inspector stopped scanning it; push it again (rebuild) or lengthen the duration",
    "LIMIT_EXCEEDED": "ECR's scan limit for this image was reached; try again later or push a new image",
    "FINDINGS_UNAVAILABLE": "ECR has no findings for this image; scan it again",
    "IMAGE_ARCHIVED": "the image is archived",
}
# Inspector coverage of an image still on its way to a first (or renewed) result
COVERAGE_PENDING = frozenset({"PENDING_INITIAL_SCAN", "SCAN_IN_PROGRESS", "PENDING_REVIVAL_SCAN"})

# Inspector also reports UNTRIAGED; basic scanning reports UNDEFINED. Neither is gated, both are shown.
SEVERITY_ORDER = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL", "UNTRIAGED", "UNDEFINED")
TOP_FINDINGS = 5
PAGE_SIZE = 1000
MAX_PAGES = 10  # names the worst findings from the first 10,000; the counts always cover every finding

REPOSITORY_PATTERN = re.compile(r"[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*")
DIGEST_PATTERN = re.compile(r"[a-zA-Z0-9-_+.]+:[a-fA-F0-9]+")

# StartImageScan refusals after which the scan may still appear (enhanced scanning scans by itself; a basic
# scan already ran today, "once per 24 hours on an individual image"): keep polling and let the timeout decide
START_REFUSED_KEEP_POLLING = frozenset({"ValidationException", "InvalidParameterException", "LimitExceededException"})


@dataclass(frozen=True)
class Thresholds:
    max_critical: int = 0
    max_high: int = 5

    def limits(self) -> dict[str, int]:
        return {"CRITICAL": self.max_critical, "HIGH": self.max_high}


@dataclass(frozen=True)
class Verdict:
    state: str
    message: str


@dataclass(frozen=True)
class Observation:
    """What one poll saw; `decide` needs nothing else.

    `findings` is the DescribeImageScanFindings response with the finding lists of every page read merged in;
    None when ECR raised ScanNotFoundException (or the image/repository does not exist, see `missing`).
    """

    findings: Mapping[str, Any] | None = None
    pages_truncated: bool = False
    missing: str | None = None  # "image not found" message: the gate fails
    scan_started: bool = False  # this run started a basic scan
    start_refused: str | None = None  # StartImageScan said no (e.g. enhanced scanning, daily limit)
    unsupported: str | None = None  # StartImageScan said the image type cannot be scanned
    scan_type: str | None = None  # the registry's BASIC or ENHANCED (GetRegistryScanningConfiguration)
    image: Mapping[str, Any] | None = None  # the DescribeImages entry: imagePushedAt, imageStatus
    coverage: Sequence[Mapping[str, Any]] | None = None  # Inspector ListCoverage entries for the image


def image_id(tag: str) -> dict[str, str]:
    """`--tag` takes a tag or a digest (sha256:...)."""
    return {"imageDigest": tag} if tag.startswith("sha256:") else {"imageTag": tag}


def severity_counts(findings: Mapping[str, Any]) -> dict[str, int]:
    scan = findings.get("imageScanFindings") or {}
    counts = scan.get("findingSeverityCounts")
    if counts is not None:
        return {str(k).upper(): int(v) for k, v in counts.items()}
    # no summary map: count what the pages hold (enhanced scanning with nothing found omits the map)
    tally: dict[str, int] = {}
    for finding in list(scan.get("findings") or []) + list(scan.get("enhancedFindings") or []):
        severity = str(finding.get("severity") or "UNDEFINED").upper()
        tally[severity] = tally.get(severity, 0) + 1
    return tally


def _attribute(finding: Mapping[str, Any], key: str) -> str | None:
    for attribute in finding.get("attributes") or []:
        if attribute.get("key") == key:
            return attribute.get("value")
    return None


def _severity_rank(severity: str | None) -> int:
    severity = (severity or "UNDEFINED").upper()
    return SEVERITY_ORDER.index(severity) if severity in SEVERITY_ORDER else len(SEVERITY_ORDER)


# sort keys: (severity rank, minus score, text), so the worst finding sorts first
def _describe_basic(finding: Mapping[str, Any]) -> tuple[int, float, str]:
    package = _attribute(finding, "package_name")
    version = _attribute(finding, "package_version")
    score = _attribute(finding, "CVSS3_SCORE") or _attribute(finding, "CVSS2_SCORE")
    parts = [finding.get("name") or "?", (finding.get("severity") or "UNDEFINED").upper()]
    if package:
        parts.append(f"{package} {version}" if version else package)
    if finding.get("uri"):
        parts.append(finding["uri"])
    return _severity_rank(finding.get("severity")), -_score(score), " ".join(parts)


def _describe_enhanced(finding: Mapping[str, Any]) -> tuple[int, float, str]:
    details = finding.get("packageVulnerabilityDetails") or {}
    name = details.get("vulnerabilityId") or finding.get("title") or finding.get("findingArn") or "?"
    packages = ", ".join(
        f"{p.get('name')} {p.get('version')}" if p.get("version") else str(p.get("name"))
        for p in details.get("vulnerablePackages") or []
        if p.get("name")
    )
    parts = [name, (finding.get("severity") or "UNDEFINED").upper()]
    if packages:
        parts.append(packages)
    url = details.get("sourceUrl") or ((finding.get("remediation") or {}).get("recommendation") or {}).get("url")
    if url:
        parts.append(url)
    return _severity_rank(finding.get("severity")), -_score(finding.get("score")), " ".join(parts)


def _score(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def top_findings(findings: Mapping[str, Any], limit: int = TOP_FINDINGS) -> list[str]:
    """The worst findings, one short line each: severity first, then the higher score."""
    scan = findings.get("imageScanFindings") or {}
    described = [_describe_basic(f) for f in scan.get("findings") or []]
    described += [_describe_enhanced(f) for f in scan.get("enhancedFindings") or []]
    described.sort()
    return [text for _, _, text in described[:limit]]


def summary_lines(counts: Mapping[str, int], thresholds: Thresholds) -> list[str]:
    limits = thresholds.limits()
    known = [s for s in SEVERITY_ORDER if s in counts or s in limits]
    others = sorted(s for s in counts if s not in SEVERITY_ORDER)
    lines = []
    for severity in known + others:
        count = counts.get(severity, 0)
        line = f"  {severity:<13} {count:>5}"
        if severity in limits:
            line += f"  (max {limits[severity]})"
            if count > limits[severity]:
                line += "  OVER"
        lines.append(line)
    return lines


def _status(findings: Mapping[str, Any]) -> tuple[str, str]:
    status = findings.get("imageScanStatus") or {}
    return str(status.get("status") or ""), str(status.get("description") or "")


def _unscannable(reason: str, allow_unscannable: bool) -> Verdict:
    if allow_unscannable:
        return Verdict(PASSED, f"WARNING: image NOT scanned ({reason}); passing because --allow-unscannable is set")
    return Verdict(FAILED, f"image cannot be scanned: {reason} (pass --allow-unscannable to let it through)")


def _when(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else "an unknown time"


def _seconds(value: Any) -> float:
    return value.timestamp() if isinstance(value, datetime) else 0.0


def _is_enhanced(observation: Observation, status: str) -> bool:
    return observation.scan_type == "ENHANCED" or status == "ACTIVE"


def _archived(image: Mapping[str, Any] | None) -> str | None:
    state = (image or {}).get("imageStatus")
    if state in ("ARCHIVED", "ACTIVATING"):
        return state
    return None


def decide(
    image: str, observation: Observation, thresholds: Thresholds, *, allow_unscannable: bool = False
) -> Verdict:
    """Pure verdict over one poll's API responses."""
    if observation.missing:
        return Verdict(FAILED, observation.missing)
    archived = _archived(observation.image)
    if archived == "ARCHIVED":
        return Verdict(
            FAILED,
            f"image {image} is ARCHIVED: it can be neither scanned nor pulled by ECS; restore it (ECR image "
            "storage class) or push it again",
        )
    if archived == "ACTIVATING":
        return Verdict(WAITING, f"image {image} is being restored from the archive (ACTIVATING)")
    if observation.unsupported:
        return _unscannable(observation.unsupported, allow_unscannable)
    if observation.findings is None:
        if observation.scan_started:
            return Verdict(WAITING, f"started a basic scan of {image}; no scan result yet")
        if observation.start_refused:
            return Verdict(
                WAITING,
                f"no scan of {image} yet; StartImageScan refused ({observation.start_refused}), "
                "waiting for the registry's own (enhanced or on-push) scan",
            )
        if observation.scan_type == "ENHANCED":
            return Verdict(
                WAITING,
                f"no scan of {image} yet (enhanced scanning: does a registry scan filter cover this repository?)",
            )
        return Verdict(WAITING, f"no scan of {image} yet")

    status, description = _status(observation.findings)
    described = f"{status}" + (f" ({description})" if description else "")
    if not status or status in PENDING_STATUSES:
        return Verdict(WAITING, f"scan of {image} is {described or 'not reported yet'}")
    if status == "IMAGE_ARCHIVED":
        return Verdict(FAILED, f"image {image} is archived (scan status {described}); restore it or push it again")
    if status not in READY_STATUSES:
        hint = UNSCANNABLE_HINTS.get(status)
        return _unscannable(f"scan status {described}" + (f": {hint}" if hint else ""), allow_unscannable)

    counts = severity_counts(observation.findings)
    over = [
        f"{severity} {counts.get(severity, 0)} > max {limit}"
        for severity, limit in thresholds.limits().items()
        if counts.get(severity, 0) > limit
    ]
    enhanced = _is_enhanced(observation, status)
    kind = "enhanced" if enhanced else "basic"
    totals = ", ".join(f"{s} {counts[s]}" for s in SEVERITY_ORDER if counts.get(s)) or "no findings"
    if over:
        return Verdict(FAILED, _over_threshold(image, kind, status, over, counts, thresholds, observation))
    fresh = (
        _fresh_enhanced(image, observation, allow_unscannable) if enhanced else _fresh_basic(image, observation)
    )
    if fresh.state != PASSED:
        return fresh
    return Verdict(PASSED, f"{image} {kind} scan {status}: {totals}; within thresholds; {fresh.message}")


def _over_threshold(
    image: str, kind: str, status: str, over: list[str], counts: Mapping[str, int], thresholds: Thresholds,
    observation: Observation,
) -> str:
    lines = [f"{image} {kind} scan {status} has findings over threshold: {'; '.join(over)}"]
    lines += summary_lines(counts, thresholds)
    worst = top_findings(observation.findings or {})
    if worst:
        heading = f"  top {len(worst)} findings"
        if observation.pages_truncated:
            heading += f" (from the first {MAX_PAGES * PAGE_SIZE} listed)"
        lines.append(heading + ":")
        lines += [f"    - {text}" for text in worst]
    return "\n".join(lines)


def _pushed_at(observation: Observation) -> datetime | None:
    pushed = (observation.image or {}).get("imagePushedAt")
    return pushed if isinstance(pushed, datetime) else None


def _fresh_basic(image: str, observation: Observation) -> Verdict:
    completed = ((observation.findings or {}).get("imageScanFindings") or {}).get("imageScanCompletedAt")
    pushed = _pushed_at(observation)
    if isinstance(completed, datetime) and pushed is not None and completed >= pushed:
        return Verdict(PASSED, f"scanned {completed.isoformat()}, after the push {pushed.isoformat()}")
    wait = f"the scan result of {image} (completed {_when(completed)}) is not from after the push ({_when(pushed)})"
    if observation.start_refused:
        wait += f"; StartImageScan refused ({observation.start_refused})"
    elif observation.scan_started:
        wait += "; started a new basic scan"
    return Verdict(WAITING, wait)


def _fresh_enhanced(image: str, observation: Observation, allow_unscannable: bool) -> Verdict:
    pushed = _pushed_at(observation)
    entries = list(observation.coverage or [])
    if not entries:
        return Verdict(WAITING, f"Amazon Inspector does not list {image} in its coverage yet")
    entry = max(entries, key=lambda e: _seconds(e.get("lastScannedAt")))
    scan_status = entry.get("scanStatus") or {}
    code, reason = scan_status.get("statusCode"), scan_status.get("reason")
    scanned = entry.get("lastScannedAt")
    if code == "ACTIVE" and reason == "SUCCESSFUL":
        if isinstance(scanned, datetime) and pushed is not None and scanned >= pushed:
            return Verdict(PASSED, f"Inspector scanned it {scanned.isoformat()}, after the push {pushed.isoformat()}")
        return Verdict(
            WAITING,
            f"Inspector's last scan of {image} ({_when(scanned)}) is not from after the push ({_when(pushed)})",
        )
    if code == "ACTIVE" or reason in COVERAGE_PENDING:
        return Verdict(WAITING, f"Inspector coverage of {image} is {code}/{reason}")
    hint = UNSCANNABLE_HINTS.get(reason or "")
    return _unscannable(
        f"Inspector does not scan {image}: coverage {code}/{reason}" + (f": {hint}" if hint else ""), allow_unscannable
    )


class Observer:
    """Collects one poll's responses; starts at most one basic scan per run."""

    def __init__(
        self,
        ecr: Any,
        *,
        repository: str,
        tag: str,
        inspector: Any = None,
        thresholds: Thresholds | None = None,
        start_scan: bool = True,
    ) -> None:
        self._ecr = ecr
        self._thresholds = thresholds or Thresholds()
        self._inspector = inspector
        self._repository = repository
        self._image_id = image_id(tag)
        self._image = f"{repository}{'@' if tag.startswith('sha256:') else ':'}{tag}"
        self._may_start = start_scan
        self._scan_started = False
        self._start_refused: str | None = None
        self._scan_type: str | None = None
        self._image_detail: dict[str, Any] | None = None

    def observe(self) -> Observation:
        from botocore.exceptions import ClientError

        if self._scan_type is None:
            configuration = self._ecr.get_registry_scanning_configuration()
            self._scan_type = (configuration.get("scanningConfiguration") or {}).get("scanType") or "BASIC"
        try:
            if self._image_detail is None or _archived(self._image_detail):
                described = self._ecr.describe_images(repositoryName=self._repository, imageIds=[self._image_id])
                self._image_detail = (described.get("imageDetails") or [{}])[0]
            first = self._ecr.describe_image_scan_findings(**self._findings_request())
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code")
            if code in ("ImageNotFoundException", "RepositoryNotFoundException"):
                return Observation(missing=f"image {self._image} not found ({code}: {_error_message(err)})")
            if code != "ScanNotFoundException":
                raise
            return self._no_scan_yet()
        if _archived(self._image_detail):
            return self._seen(None)

        status, _ = _status(first)
        if status not in READY_STATUSES:
            return self._seen(first)
        findings, truncated = self._all_pages(first)
        coverage = None
        counts = severity_counts(findings)
        # too many findings fail on their own; fewer need evidence of a scan from after the push
        over = any(counts.get(severity, 0) > limit for severity, limit in self._thresholds.limits().items())
        if not over and (self._scan_type == "ENHANCED" or status == "ACTIVE"):
            coverage = self._coverage(first)
        elif not over and not self._fresh_basic(findings):
            self._start()
        return self._seen(findings, pages_truncated=truncated, coverage=coverage)

    def _seen(self, findings: Mapping[str, Any] | None, **extra: Any) -> Observation:
        return Observation(
            findings=findings,
            scan_started=self._scan_started,
            start_refused=self._start_refused,
            scan_type=self._scan_type,
            image=self._image_detail,
            **extra,
        )

    def _findings_request(self) -> dict[str, Any]:
        return {"repositoryName": self._repository, "imageId": self._image_id, "maxResults": PAGE_SIZE}

    def _all_pages(self, first: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        merged = dict(first)
        scan = dict(first.get("imageScanFindings") or {})
        basic = list(scan.get("findings") or [])
        enhanced = list(scan.get("enhancedFindings") or [])
        token = first.get("nextToken")
        pages = 1
        while token and pages < MAX_PAGES:
            page = self._ecr.describe_image_scan_findings(**self._findings_request(), nextToken=token)
            page_scan = page.get("imageScanFindings") or {}
            basic += page_scan.get("findings") or []
            enhanced += page_scan.get("enhancedFindings") or []
            token = page.get("nextToken")
            pages += 1
        if basic:
            scan["findings"] = basic
        if enhanced:
            scan["enhancedFindings"] = enhanced
        merged["imageScanFindings"] = scan
        merged.pop("nextToken", None)
        return merged, bool(token)

    def _fresh_basic(self, findings: Mapping[str, Any]) -> bool:
        completed = (findings.get("imageScanFindings") or {}).get("imageScanCompletedAt")
        pushed = (self._image_detail or {}).get("imagePushedAt")
        return isinstance(completed, datetime) and isinstance(pushed, datetime) and completed >= pushed

    def _coverage(self, findings: Mapping[str, Any]) -> list[dict[str, Any]]:
        if self._inspector is None:
            return []
        digest = (findings.get("imageId") or {}).get("imageDigest") or (self._image_detail or {}).get("imageDigest")
        registry = findings.get("registryId") or (self._image_detail or {}).get("registryId")
        if not (digest and registry):
            return []
        meta = self._ecr.meta
        resource = f"arn:{meta.partition}:ecr:{meta.region_name}:{registry}:repository/{self._repository}/{digest}"
        request: dict[str, Any] = {
            "filterCriteria": {
                "resourceType": [{"comparison": "EQUALS", "value": "AWS_ECR_CONTAINER_IMAGE"}],
                "resourceId": [{"comparison": "EQUALS", "value": resource}],
            }
        }
        covered: list[dict[str, Any]] = []
        seen: set[str] = set()
        while True:
            page = self._inspector.list_coverage(**request)
            covered += page.get("coveredResources") or []
            token = page.get("nextToken")
            if not token or token in seen:
                return covered
            seen.add(token)
            request["nextToken"] = token

    def _no_scan_yet(self) -> Observation:
        if self._scan_type == "BASIC":
            refused = self._start()
            if refused is not None:
                return refused
        return self._seen(None)

    def _start(self) -> Observation | None:
        from botocore.exceptions import ClientError

        if not self._may_start or self._scan_started or self._start_refused is not None:
            return None
        try:
            self._ecr.start_image_scan(repositoryName=self._repository, imageId=self._image_id)
            self._scan_started = True
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code")
            if code == "UnsupportedImageTypeException":
                return Observation(unsupported=f"{code}: {_error_message(err)}")
            if code in ("ImageNotFoundException", "RepositoryNotFoundException"):
                return Observation(missing=f"image {self._image} not found ({code}: {_error_message(err)})")
            if code == "ImageArchivedException":
                return Observation(image={**(self._image_detail or {}), "imageStatus": "ARCHIVED"})
            if code not in START_REFUSED_KEEP_POLLING:
                raise
            self._start_refused = f"{code}: {_error_message(err)}"
        return None


def _error_message(err: Any) -> str:
    return err.response.get("Error", {}).get("Message", "")


def gate(
    observe: Callable[[], Observation],
    *,
    image: str,
    thresholds: Thresholds,
    allow_unscannable: bool,
    timeout: float,
    interval: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    log: Callable[[str], None] = print,
) -> Outcome:
    start = clock()
    last_message = ""
    while True:
        verdict = decide(image, observe(), thresholds, allow_unscannable=allow_unscannable)
        elapsed = clock() - start
        if verdict.state == PASSED:
            return Outcome(EXIT_OK, f"PASS: {verdict.message}")
        if verdict.state == FAILED:
            return Outcome(EXIT_FAILED, f"FAIL: {verdict.message}")
        if verdict.message != last_message:
            log(f"image-scan-gate: [{elapsed:5.0f}s] waiting: {verdict.message}")
            last_message = verdict.message
        if elapsed + interval > timeout:
            return Outcome(
                EXIT_TIMEOUT, f"TIMEOUT after {elapsed:.0f}s (limit {timeout:.0f}s); last state: {verdict.message}"
            )
        sleep(interval)


def _env_flag(name: str) -> bool:
    return (env(name) or "").lower() in ("1", "true", "yes", "on")


def _non_negative_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more: {value}")
    return number


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="image_scan_gate.py",
        description="Pass only when the image's ECR scan (basic or enhanced) has at most --max-critical CRITICAL "
        "and --max-high HIGH findings.",
    )
    parser.add_argument(
        "--repository", default=env("IMAGE_REPOSITORY"), help="ECR repository name [env IMAGE_REPOSITORY]"
    )
    parser.add_argument(
        "--tag", default=env("IMAGE_TAG"), help="image tag (the asset hash) or digest sha256:... [env IMAGE_TAG]"
    )
    parser.add_argument(
        "--max-critical",
        type=_non_negative_int,
        default=env("IMAGE_SCAN_MAX_CRITICAL", "0"),
        help="most CRITICAL findings allowed (default 0) [env IMAGE_SCAN_MAX_CRITICAL]",
    )
    parser.add_argument(
        "--max-high",
        type=_non_negative_int,
        default=env("IMAGE_SCAN_MAX_HIGH", "5"),
        help="most HIGH findings allowed (default 5) [env IMAGE_SCAN_MAX_HIGH]",
    )
    parser.add_argument(
        "--allow-unscannable",
        action="store_true",
        default=_env_flag("IMAGE_SCAN_ALLOW_UNSCANNABLE"),
        help="pass with a warning when the image cannot be scanned (FAILED, UNSUPPORTED_IMAGE, ...) "
        "[env IMAGE_SCAN_ALLOW_UNSCANNABLE=true]",
    )
    add_polling_arguments(
        parser,
        role_env="SCANNER_ROLE_ARN",
        role_help="e.g. a read-only role in the environment account",
        what="the scan",
        timeout_env="IMAGE_SCAN_TIMEOUT_SECONDS",
        timeout_default=600,
        interval_env="IMAGE_SCAN_POLL_SECONDS",
        interval_default=10,
    )
    args = parser.parse_args(argv)
    missing = [flag for flag, value in (("--repository", args.repository), ("--tag", args.tag)) if not value]
    if missing:
        parser.error(f"missing {', '.join(missing)} (or the matching environment variable)")
    if not (2 <= len(args.repository) <= 256 and REPOSITORY_PATTERN.fullmatch(args.repository)):
        parser.error(f"--repository {args.repository!r} is not an ECR repository name")
    if args.tag.startswith("sha256:"):
        if not DIGEST_PATTERN.fullmatch(args.tag):
            parser.error(f"--tag {args.tag!r} is not an image digest")
    elif len(args.tag) > 300 or ":" in args.tag or "@" in args.tag:
        parser.error(f"--tag {args.tag!r} is not an image tag (give the tag only, not repository:tag)")
    check_polling_arguments(parser, args)
    return args


def clients(region: str | None, role_arn: str | None) -> tuple[Any, Any]:
    """ECR and Inspector clients sharing one (renewing) assumed-role session."""
    session = assumed_session(region=region, role_arn=role_arn, session_name="image-scan-gate")
    return session.client("ecr", config=client_config()), session.client("inspector2", config=client_config())


def ecr_client(region: str | None, role_arn: str | None) -> Any:
    return clients(region, role_arn)[0]


def main(argv: Sequence[str] | None = None, *, ecr: Any = None, inspector: Any = None,
         sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> int:
    args = parse_args(argv)
    thresholds = Thresholds(max_critical=args.max_critical, max_high=args.max_high)
    image = f"{args.repository}{'@' if args.tag.startswith('sha256:') else ':'}{args.tag}"
    print(
        f"image-scan-gate: image={image} max-critical={thresholds.max_critical} max-high={thresholds.max_high} "
        f"timeout={args.timeout:.0f}s"
        + (" allow-unscannable" if args.allow_unscannable else "")
        + (f" role={args.role_arn}" if args.role_arn else ""),
        flush=True,
    )

    def check() -> Outcome:
        ecr_api, inspector_api = ecr, inspector
        if ecr_api is None:
            ecr_api, made_inspector = clients(args.region, args.role_arn)
            inspector_api = inspector_api or made_inspector
        observer = Observer(
            ecr_api, repository=args.repository, tag=args.tag, inspector=inspector_api, thresholds=thresholds
        )
        return gate(
            observer.observe,
            image=image,
            thresholds=thresholds,
            allow_unscannable=args.allow_unscannable,
            timeout=args.timeout,
            interval=args.interval,
            clock=clock,
            sleep=sleep,
            log=lambda line: print(line, flush=True),
        )

    return run_check("image-scan-gate", check)


if __name__ == "__main__":
    sys.exit(main())
