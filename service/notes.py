"""The notes JSON API."""

from __future__ import annotations

import email.message
import hashlib
import json
import re
import uuid
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request, Response, status
from fastapi.routing import APIRoute
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from service import notes_store
from service.cursors import InvalidCursorError
from service.errors import InvalidFieldError, RequestInProgressError, responses
from service.state import AppState

MAX_TITLE = 200
MAX_BODY = 4000
# Any valid note, even written entirely with \uXXXX escapes of astral characters, fits under this limit.
MAX_REQUEST_BYTES = 64 * 1024


def _storable(value: str) -> str:
    # PostgreSQL text holds UTF-8 only: lone surrogates (legal in JSON escapes) would fail at the database.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("must be valid Unicode text (no lone surrogates)") from exc
    return value


# NUL is excluded in the schema itself (PostgreSQL text cannot store it), so generated clients know too.
Title = Annotated[str, Field(min_length=1, max_length=MAX_TITLE, pattern=r"^[^\x00]*$"), AfterValidator(_storable)]
Body = Annotated[str, Field(max_length=MAX_BODY, pattern=r"^[^\x00]*$"), AfterValidator(_storable)]


class NoteCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Title
    body: Body = ""


class NoteOut(BaseModel):
    id: uuid.UUID
    title: str
    body: str
    created_at: datetime

    @classmethod
    def of(cls, note: notes_store.Note) -> NoteOut:
        return cls(id=note.id, title=note.title, body=note.body, created_at=note.created_at)


class NotePage(BaseModel):
    items: list[NoteOut]
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next page; null on the last page")


class JsonBodyRoute(APIRoute):
    """Refuses a body that is not JSON with 415 before it is read, instead of a 422 about the body's shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler

        async def checked(request: Request) -> Response:
            _require_json(request)
            return await handler(request)

        return checked


# Echoed in the message only when it looks like a media type (RFC 9110 token/token), never arbitrary header text.
_MEDIA_TYPE_RE = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]{1,64}/[a-z0-9!#$%&'*+.^_`|~-]{1,64}")


def _require_json(request: Request) -> None:
    content_type = request.headers.get("content-type")
    if content_type is None:
        # No body, no media type to judge: that is the 422 for a missing request body.
        if request.headers.get("content-length", "0") == "0" and "transfer-encoding" not in request.headers:
            return
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            "The request body has no Content-Type: send JSON with Content-Type: application/json",
            headers={"Accept-Post": "application/json"},
        )
    parsed = email.message.Message()
    parsed["content-type"] = content_type
    subtype = parsed.get_content_subtype()
    if parsed.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json")):
        return
    media_type = content_type.partition(";")[0].strip().lower()
    named = media_type if _MEDIA_TYPE_RE.fullmatch(media_type) else "of this request"
    raise HTTPException(
        status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
        f"Content-Type {named} is not supported: send JSON with Content-Type: application/json",
        headers={"Accept-Post": "application/json"},
    )


# A cursor is base64url(JSON position) "." base64url(16-byte signature); issued ones are about 125 characters.
CURSOR_PATTERN = r"^[A-Za-z0-9_-]{1,160}\.[A-Za-z0-9_-]{22}$"
MAX_CURSOR = 183

router = APIRouter(
    prefix="/api/notes", tags=["notes"], max_body_size=MAX_REQUEST_BYTES, route_class=JsonBodyRoute
)
NoteId = Annotated[uuid.UUID, Path(alias="id", description="Note id (UUID)")]
IDEMPOTENCY_HEADER = "Idempotency-Key"
# `str`, not `str | None`: a header is absent or a string, never JSON null (the default None means absent).
IdempotencyKey = Annotated[
    str,
    Header(
        alias=IDEMPOTENCY_HEADER,
        # Visible ASCII, bare (`abc`) or as a structured-field string (`"abc"`); both name the same key.
        pattern=r"^[\x21-\x7e]{1,255}$",
        description=(
            "Makes the POST safe to retry. The first request with a key creates the note and stores its response;"
            " a retry with the same key and the same body gets that response again (same id, same status, with"
            " `Idempotent-Replayed: true`) and creates nothing; a retry while the first request is still running"
            " gets a 409 with Retry-After; the same key with another body is a 422. Keys are"
            " forgotten after the configured time (IDEMPOTENCY_KEY_TTL_SECONDS, default 24 h). Use a fresh random"
            " value (a UUID) per note you mean to create."
        ),
    ),
]
_CREATED_HEADERS = {
    "Location": {"description": "URL of the new note", "schema": {"type": "string"}},
    "Idempotent-Replayed": {
        "description": "`true` when this is the stored response to an earlier request with the same Idempotency-Key",
        "schema": {"type": "string", "enum": ["true"]},
    },
}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=NoteOut,
    responses={
        201: {"headers": _CREATED_HEADERS},
        **responses(
            400,
            408,
            409,
            413,
            415,
            422,
            503,
            descriptions={
                422: "Invalid input, or an Idempotency-Key already used with another body; `fields` names each one"
            },
        ),
    },
    summary="Create a note",
)
async def create_note(
    note: NoteCreate,
    request: Request,
    response: Response,
    idempotency_key: IdempotencyKey = None,  # type: ignore[assignment]
) -> NoteOut:
    state = AppState.of(request)
    if idempotency_key is None:
        created = await state.database.run(lambda conn: notes_store.create(conn, title=note.title, body=note.body))
        response.headers["Location"] = f"/api/notes/{created.id}"
        return NoteOut.of(created)
    key = _unquoted(idempotency_key)
    try:
        stored = await state.database.run(
            lambda conn: notes_store.create_once(
                conn,
                key=key,
                fingerprint=_fingerprint(note),
                ttl_seconds=state.settings.idempotency_key_ttl,
                title=note.title,
                body=note.body,
                render=_render,
            )
        )
    except notes_store.KeyReusedError as exc:
        raise InvalidFieldError(
            field=IDEMPOTENCY_HEADER, location="header", message="key already used with another request body"
        ) from exc
    except notes_store.KeyInUseError as exc:
        raise RequestInProgressError(field=IDEMPOTENCY_HEADER) from exc
    out = NoteOut.model_validate(stored.response)
    response.status_code = stored.status
    response.headers["Location"] = f"/api/notes/{out.id}"
    if stored.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return out


def _unquoted(value: str) -> str:
    return value[1:-1] if len(value) > 2 and value[0] == value[-1] == '"' else value


def _fingerprint(note: NoteCreate) -> bytes:
    # The validated body, not its bytes: the same note sent with other spacing or key order is the same request.
    canonical = json.dumps(["POST", "/api/notes", note.model_dump()], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).digest()


def _render(note: notes_store.Note) -> dict[str, Any]:
    return NoteOut.of(note).model_dump(mode="json")


@router.get(
    "",
    response_model=NotePage,
    responses=responses(
        422,
        503,
        descriptions={422: "Invalid `limit`, or a `cursor` this API did not issue; `fields` names each one"},
    ),
    summary="List notes, newest first",
)
async def list_notes(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size")] = 20,
    # Likewise `str` with a None default: the document says "string" (a query parameter is never JSON null).
    cursor: Annotated[  # type: ignore[assignment]
        str,
        Query(
            max_length=MAX_CURSOR,
            pattern=CURSOR_PATTERN,
            description=(
                "`next_cursor` from the previous page, unchanged. A cursor this API did not issue (edited, or signed"
                " by another environment) is a 422 naming `cursor`, even when it matches the pattern."
            ),
        ),
    ] = None,
) -> NotePage:
    state = AppState.of(request)
    after = None
    if cursor is not None:
        try:
            after = state.cursors.decode(cursor)
        except InvalidCursorError as exc:
            raise InvalidFieldError(field="cursor", location="query", message=str(exc)) from exc
    notes, more = await state.database.run(lambda conn: notes_store.page(conn, limit=limit, after=after))
    next_cursor = state.cursors.encode(notes[-1].position) if more else None
    return NotePage(
        items=[NoteOut.of(note) for note in notes],
        next_cursor=next_cursor,
    )


@router.get("/{id}", response_model=NoteOut, responses=responses(404, 422, 503), summary="Get a note")
async def get_note(note_id: NoteId, request: Request) -> NoteOut:
    note = await AppState.of(request).database.run(lambda conn: notes_store.get(conn, note_id))
    if note is None:
        raise _not_found(note_id)
    return NoteOut.of(note)


@router.delete(
    "/{id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=responses(404, 422, 503),
    summary="Delete a note",
)
async def delete_note(note_id: NoteId, request: Request) -> Response:
    deleted = await AppState.of(request).database.run(lambda conn: notes_store.delete(conn, note_id))
    if not deleted:
        raise _not_found(note_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _not_found(note_id: uuid.UUID) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"No note with id {note_id}")
