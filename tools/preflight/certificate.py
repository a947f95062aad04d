"""The TLS certificate of an environment's domain exists, is ISSUED, and covers the domain."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from config import EnvironmentConfig
from tools.preflight.results import Result, error_code, failed, passed


def covers(name: str, domain: str) -> bool:
    # ACM wildcard names cover exactly one label: *.example.com covers notes.example.com, not a.b.example.com
    if name.startswith("*."):
        head, _, rest = domain.partition(".")
        return bool(head) and rest == name[2:]
    return name == domain


def check_certificate(acm: Any, *, env: EnvironmentConfig) -> list[Result]:
    tls = env.tls
    assert tls is not None
    what = f"certificate for {tls.domain_name}"
    try:
        certificate = acm.describe_certificate(CertificateArn=tls.certificate_arn)["Certificate"]
    except ClientError as error:
        if error_code(error) != "ResourceNotFoundException":
            raise
        return [failed(what, f"{tls.certificate_arn} does not exist: request it in ACM and set environments.{env.name}.tls.certificate_arn")]
    status = certificate.get("Status")
    if status != "ISSUED":
        return [failed(f"{what} is {status}", "finish its DNS validation in ACM (or request a new one) before deploying")]
    names = certificate.get("SubjectAlternativeNames") or [certificate.get("DomainName", "")]
    if not any(covers(name, tls.domain_name) for name in names):
        return [failed(what, f"the certificate covers {', '.join(names)}, not {tls.domain_name}: request one that does")]
    return [passed(f"{what} is ISSUED and covers it")]
