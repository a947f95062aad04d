"""The notes JSON API."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request, Response, status
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


router = APIRouter(prefix="/api/notes", tags=["notes"], max_body_size=MAX_REQUEST_BYTES)
NoteId = Annotated[uuid.UUID, Path(alias="id", description="Note id (UUID)")]
IDEMPOTENCY_HEADER = "Idempotency-Key"
IdempotencyKey = Annotated[
    str | None,
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
    note: NoteCreate, request: Request, response: Response, idempotency_key: IdempotencyKey = None
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


@router.get("", response_model=NotePage, responses=responses(422, 503), summary="List notes, newest first")
async def list_notes(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size")] = 20,
    cursor: Annotated[str | None, Query(max_length=512, description="`next_cursor` from the previous page")] = None,
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
