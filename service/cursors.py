"""Opaque pagination cursors, signed with the environment's APP_SECRET so clients cannot forge positions."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from datetime import datetime


class InvalidCursorError(ValueError):
    pass


@dataclass(frozen=True, kw_only=True)
class Position:
    created_at: datetime
    id: uuid.UUID


class CursorSigner:
    def __init__(self, *, secret: str) -> None:
        # A key derived for this purpose only, so the same APP_SECRET can sign other things safely later.
        self._key = hmac.new(secret.encode(), b"notes-cursor-v1", hashlib.sha256).digest()

    def encode(self, position: Position) -> str:
        payload = _b64encode(
            json.dumps([position.created_at.isoformat(), str(position.id)], separators=(",", ":")).encode()
        )
        return f"{payload}.{_b64encode(self._sign(payload))}"

    def decode(self, token: str) -> Position:
        payload, _, signature = token.partition(".")
        try:
            valid = hmac.compare_digest(_b64decode(signature), self._sign(payload))
        except (binascii.Error, ValueError):
            valid = False
        if not valid:
            raise InvalidCursorError("cursor is not one this API issued")
        try:
            created_at, note_id = json.loads(_b64decode(payload))
            return Position(created_at=datetime.fromisoformat(created_at), id=uuid.UUID(note_id))
        except (ValueError, TypeError) as exc:
            raise InvalidCursorError("cursor is malformed") from exc

    def _sign(self, payload: str) -> bytes:
        return hmac.new(self._key, payload.encode("ascii", "replace"), hashlib.sha256).digest()[:16]


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text.encode("ascii") + b"=" * (-len(text) % 4))
