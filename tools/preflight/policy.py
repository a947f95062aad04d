"""Does a resource policy (secret, key, role trust) admit one principal for one action?

A small, conservative reading of IAM's policy language: an explicit Deny wins, then any Allow. Principals match
exactly, through their account (`123456789012` or `arn:aws:iam::123456789012:root`), through `*`, or through a
wildcard. Conditions are evaluated only for the keys the caller knows (the principal's ARN and account, the service a
key is used through); a statement that depends on any other key makes the answer UNKNOWN rather than a guess.
"""

from __future__ import annotations

import enum
import json
import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

ROOT_ARN = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}):root$")


class Decision(enum.Enum):
    ALLOWED = "allowed"
    NOT_ALLOWED = "not allowed"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    reason: str


@dataclass(frozen=True)
class Request:
    principal_arn: str
    account: str
    action: str
    resource: str
    context: Mapping[str, str] = field(default_factory=dict)  # condition key → the value this request would carry


def parse_document(value: str | Mapping[str, Any]) -> dict[str, Any]:
    """Policies arrive as JSON text, URL-encoded JSON (IAM's raw API) or, through boto3's IAM handler, decoded."""
    if isinstance(value, Mapping):
        return dict(value)
    text = value.strip()
    if not text.startswith("{"):
        text = urllib.parse.unquote(text)
    return json.loads(text)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _glob(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    # IAM wildcards: '*' is any run of characters, '?' any one character
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, flags=re.IGNORECASE if ignore_case else 0) is not None


def _principal_value_matches(value: str, request: Request) -> bool:
    if value == "*" or value == request.account:
        return True
    root = ROOT_ARN.match(value)
    if root:
        return root.group(1) == request.account
    return _glob(value, request.principal_arn)


def _principals_match(principal: Any, request: Request) -> bool:
    if principal == "*":
        return True
    if not isinstance(principal, Mapping):
        return False
    return any(_principal_value_matches(str(v), request) for v in _as_list(principal.get("AWS")))


def _matches_any(patterns: Any, value: str, *, ignore_case: bool) -> bool:
    return any(_glob(str(p), value, ignore_case=ignore_case) for p in _as_list(patterns))


def _string_equals(expected: str, actual: str) -> bool:
    return expected == actual


def _string_equals_ignore_case(expected: str, actual: str) -> bool:
    return expected.lower() == actual.lower()


def _string_like(expected: str, actual: str) -> bool:
    return _glob(expected, actual)


def _bool(expected: str, actual: str) -> bool:
    return expected.lower() == actual.lower()


MATCHERS: dict[str, Callable[[str, str], bool]] = {
    "StringEquals": _string_equals,
    "StringEqualsIgnoreCase": _string_equals_ignore_case,
    "StringLike": _string_like,
    "ArnEquals": _string_equals,
    "ArnLike": _string_like,
    "Bool": _bool,
}
NEGATIONS = {
    "StringNotEquals": "StringEquals",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
    "StringNotLike": "StringLike",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
}


def _condition(operator: str, key: str, expected: Any, context: Mapping[str, str]) -> bool | None:
    """True/False when it can be decided from `context`; None when the key or operator is beyond this reader."""
    actual = context.get(key.lower())
    base = operator.split(":", 1)[-1].removesuffix("IfExists")
    if actual is None:
        return None
    if base == "Null":
        return any(str(e).lower() == "false" for e in _as_list(expected))
    positive = NEGATIONS.get(base, base)
    matcher = MATCHERS.get(positive)
    if matcher is None:
        return None
    hit = any(matcher(str(e), actual) for e in _as_list(expected))
    return not hit if base in NEGATIONS else hit


def _conditions(statement: Mapping[str, Any], context: Mapping[str, str], unknown: set[str]) -> bool | None:
    outcome: bool | None = True
    for operator, clauses in (statement.get("Condition") or {}).items():
        for key, expected in (clauses or {}).items():
            result = _condition(operator, key, expected, context)
            if result is False:
                return False
            if result is None:
                unknown.add(f"{operator} {key}")
                outcome = None
    return outcome


def _applies(statement: Mapping[str, Any], request: Request, unknown: set[str]) -> bool | None:
    if "NotPrincipal" in statement:
        if _principals_match(statement["NotPrincipal"], request):
            return False
    elif not _principals_match(statement.get("Principal"), request):
        return False
    if "NotAction" in statement:
        if _matches_any(statement["NotAction"], request.action, ignore_case=True):
            return False
    elif not _matches_any(statement.get("Action"), request.action, ignore_case=True):
        return False
    if "NotResource" in statement:
        if _matches_any(statement["NotResource"], request.resource, ignore_case=False):
            return False
    elif not _matches_any(statement.get("Resource", "*"), request.resource, ignore_case=False):
        return False
    return _conditions(statement, {k.lower(): v for k, v in request.context.items()}, unknown)


def evaluate(document: str | Mapping[str, Any], request: Request) -> Verdict:
    policy = parse_document(document)
    allow: list[str] = []
    allow_maybe: list[str] = []
    deny_maybe: list[str] = []
    unknown: set[str] = set()
    for index, statement in enumerate(_as_list(policy.get("Statement"))):
        label = f"statement {statement.get('Sid') or index + 1}"
        applies = _applies(statement, request, unknown)
        effect = statement.get("Effect")
        if applies is True and effect == "Deny":
            return Verdict(Decision.NOT_ALLOWED, f"{label} denies it")
        if applies is None:
            (deny_maybe if effect == "Deny" else allow_maybe).append(label)
        elif applies and effect == "Allow":
            allow.append(label)
    keys = ", ".join(sorted(unknown))
    if deny_maybe and (allow or allow_maybe):
        return Verdict(Decision.UNKNOWN, f"{', '.join(deny_maybe)} may deny it, depending on {keys}")
    if allow:
        return Verdict(Decision.ALLOWED, f"{allow[0]} allows it")
    if allow_maybe:
        return Verdict(Decision.UNKNOWN, f"{', '.join(allow_maybe)} may allow it, depending on {keys}")
    return Verdict(Decision.NOT_ALLOWED, "no statement allows it")
