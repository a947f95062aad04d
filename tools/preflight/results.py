"""What a check reports, and how AWS errors become one of its outcomes."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
    SSOError,
    TokenRetrievalError,
)

# The request was signed but the caller may not do this: a policy question, not a broken deployment.
ACCESS_DENIED_CODES = frozenset(
    {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError", "Forbidden"}
)
# The credentials themselves are missing, expired or unknown to AWS: nothing else can be checked.
CREDENTIAL_ERROR_CODES = frozenset(
    {
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "AuthFailure",
        "RequestExpired",
    }
)
CREDENTIAL_ERRORS = (
    NoCredentialsError,
    PartialCredentialsError,
    CredentialRetrievalError,
    TokenRetrievalError,
    SSOError,
    ProfileNotFound,
)


class Status(enum.Enum):
    PASSED = "✓"
    FAILED = "✗"
    UNCHECKED = "!"  # could not be read from here: neither a pass nor a failure
    NEUTRAL = "–"  # nothing to check yet (e.g. a stack that is not deployed)


@dataclass(frozen=True)
class Result:
    status: Status
    what: str
    detail: str = ""  # FAILED: the fix; UNCHECKED: why, and what to check by hand

    @property
    def line(self) -> str:
        if self.status is Status.FAILED:
            return f"{self.status.value} {self.what}: {self.detail}"
        if self.status is Status.UNCHECKED:
            return f"{self.status.value} {self.what}: cannot check from here: {self.detail}"
        return f"{self.status.value} {self.what}"


def passed(what: str) -> Result:
    return Result(Status.PASSED, what)


def failed(what: str, fix: str) -> Result:
    return Result(Status.FAILED, what, fix)


def unchecked(what: str, why: str) -> Result:
    return Result(Status.UNCHECKED, what, why)


def neutral(what: str) -> Result:
    return Result(Status.NEUTRAL, what)


class CredentialsUnusable(Exception):
    """The pipeline account's credentials are missing or no longer valid; one line says which."""


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def error_message(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Message", ""))


def is_access_denied(error: ClientError) -> bool:
    return error_code(error) in ACCESS_DENIED_CODES


def raise_if_credentials(error: Exception) -> None:
    if isinstance(error, CREDENTIAL_ERRORS):
        raise CredentialsUnusable(str(error)) from None
    if isinstance(error, ClientError) and error_code(error) in CREDENTIAL_ERROR_CODES:
        raise CredentialsUnusable(f"{error_code(error)}: {error_message(error)}") from None


def guarded(what: str, check: Callable[[], list[Result]], *, by_hand: str) -> list[Result]:
    """Runs one check; a denied call becomes "cannot check from here" with `by_hand`, any other AWS error a failure."""
    try:
        return check()
    except (ClientError, BotoCoreError) as error:
        raise_if_credentials(error)
        if isinstance(error, ClientError) and is_access_denied(error):
            return [unchecked(what, f"{error.operation_name} was denied ({error_code(error)}); {by_hand}")]
        if isinstance(error, ClientError):
            return [failed(what, f"{error.operation_name} failed: {error_code(error)}: {error_message(error)}")]
        return [failed(what, f"AWS call failed: {error}")]
