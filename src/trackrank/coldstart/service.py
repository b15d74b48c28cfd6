"""The HTTP service of ``trackrank serve``: recommendations for uploaded audio, as JSON and as a page.

- ``POST /recommend``: multipart field ``file`` (``?top=10&pad=false``); the JSON of
  ``trackrank recommend --json`` for it.
- ``GET /tracks/{track_id}/similar?top=10``: the neighbours of a catalog track.
- ``GET|HEAD /audio/{track_id}``: a catalog track's audio, read-only, only from inside the catalog
  folder; byte ranges, and 304 for a copy the client already has (ETag, Last-Modified).
- ``GET|HEAD /health``: whether it answers, and with which index.
- ``GET /``: a page where a person drops an audio file and hears the top 10.

The work one request can cause is bounded: a body past the upload limit is refused on its
Content-Length at once, or as soon as its streamed bytes pass the limit, before it is spooled whole;
an upload is decoded only when its header says it is audio no longer than the duration limit, at a
sample rate and channel count within the limits, and only ``max_decodes`` at once (503 with
Retry-After past them). Requests name a host this service answers for (DNS rebinding), a POST from
another site's page is refused (:mod:`trackrank.coldstart.guards`), and each leaves one structured log line.

Endpoints are plain functions, so the ASGI server runs them in its thread pool; the model is
shared behind the recommender's lock.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from fastapi import Depends, FastAPI, File, HTTPException, Query, Request, UploadFile
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, HTMLResponse, Response
from pydantic import BaseModel
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.staticfiles import NotModifiedResponse, StaticFiles

from trackrank.coldstart.filters import Filters
from trackrank.coldstart.guards import BodyLimit, DecodeSlots, RequestLog, SameSiteUploads
from trackrank.coldstart.recommend import Recommender, answer
from trackrank.coldstart.settings import DECODE_WAIT_S, MAX_DECODES, MAX_UPLOAD_MB
from trackrank.errors import QueryError, shortened

PAGE = Path(__file__).with_name("service_page.html")
#: Suffixes kept on uploads, so the decoder can tell the format; anything else is decoded by content.
AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".aif", ".aiff", ".au"}
#: Hosts a local service answers for when none are configured.
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1", "[::1]")


class NeighbourOut(BaseModel):
    rank: int
    track_id: str
    artist: str
    distance: float
    tags: list[str]  # its strong catalog tags, most likely first
    shared_tags: list[str]  # those the query has too


class AnswerOut(BaseModel):
    file: str
    query_tags: dict[str, float | None]  # the query's strong tags: likelihood where estimated
    query_tags_from: str | None  # "estimated by at_baseline", "catalog", or None (no tagger)
    neighbours: list[NeighbourOut]


class FailureOut(BaseModel):
    file: str
    reason: str


class Recommendations(BaseModel):
    """What answers (the system, its checkpoint, the index) and the answers."""

    system: str
    model_sha256: str
    index: str
    kind: str
    n_tracks: int
    results: list[AnswerOut]
    errors: list[FailureOut]


class Health(BaseModel):
    status: str
    system: str
    n_tracks: int


def create_app(
    recommender: Recommender,
    max_upload_bytes: int = int(MAX_UPLOAD_MB * 2**20),
    *,
    allowed_hosts: list[str] | None = None,
    cors_origins: list[str] | None = None,
    max_decodes: int = MAX_DECODES,
    decode_wait_s: float = DECODE_WAIT_S,
) -> FastAPI:
    """The ASGI app around one recommender, warmed up (its first request pays neither the model's nor the
    audio path's warm-up).

    Parameters
    ----------
    max_upload_bytes : the largest request body accepted.
    allowed_hosts : the Host headers it answers (``*`` any); None: this machine's names only
        (:data:`LOCAL_HOSTS`). A page on another site cannot reach it through DNS rebinding.
    cors_origins : origins other sites' pages may call it from (and POST to); none by default.
    max_decodes : uploads decoded at once; another waits up to ``decode_wait_s`` seconds, then gets 503.
    """
    app = FastAPI(
        title="trackrank",
        description="Catalog tracks that sound like an audio file (cold start).",
        docs_url=None,  # the interactive docs load their scripts from a CDN; /openapi.json is the schema
        redoc_url=None,
    )

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return PAGE.read_text(encoding="utf-8")

    @app.get("/health")
    @app.head("/health", include_in_schema=False)
    def health() -> Health:
        identity = recommender.index.identity
        return Health(status="ok", system=identity["system"], n_tracks=identity["n_tracks"])

    add_upload_route(app, recommender, max_upload_bytes, DecodeSlots(max_decodes, decode_wait_s))
    add_catalog_routes(app, recommender)
    recommender.warm_up()
    app.add_middleware(BodyLimit, max_bytes=max_upload_bytes)
    app.add_middleware(SameSiteUploads, allowed_origins=list(cors_origins or ()))
    if cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["GET", "HEAD", "POST"])
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts or LOCAL_HOSTS))
    app.add_middleware(RequestLog)
    return app


def add_upload_route(app: FastAPI, recommender: Recommender, max_upload_bytes: int, slots: DecodeSlots) -> None:
    """``POST /recommend``: the upload copied to a temporary file (its suffix kept for the decoder), then
    decoded in one of ``slots``."""

    @app.post("/recommend", dependencies=[Depends(one_file)])
    def recommend(
        file: UploadFile = File(...),
        top: int = Query(10, ge=1, le=1000),
        pad: bool = Query(False, description="loop a file shorter than one patch (11.87 s)"),
        where: list[str] = Query([], description="only tracks with this strong tag (tag or Category=tag)"),
        exclude: list[str] = Query([], description="no track with this strong tag"),
        max_per_artist: int | None = Query(None, ge=1, description="at most this many tracks per artist"),
    ) -> Recommendations:
        filters = Filters(tuple(where), tuple(exclude), max_per_artist)
        name = Path(file.filename or "upload").name
        suffix = Path(name).suffix.lower()
        with tempfile.NamedTemporaryFile(suffix=suffix if suffix in AUDIO_SUFFIXES else "") as stream:
            shutil.copyfileobj(file.file, stream, 2**20)  # from the spooled upload, a MiB at a time
            if stream.tell() > max_upload_bytes:
                raise HTTPException(413, f"{name}: larger than the {max_upload_bytes / 2**20:.0f} MiB upload limit")
            if not stream.tell():
                raise HTTPException(422, f"{name}: empty upload")
            stream.flush()
            try:
                with slots.taken():
                    found = recommender.recommend(stream.name, k=top, pad=pad, filters=filters)
            except QueryError as error:
                raise HTTPException(422, str(error).replace(stream.name, name)) from None
        return Recommendations(**recommender.describe(), results=[answer(name, found)], errors=[])


def add_catalog_routes(app: FastAPI, recommender: Recommender) -> None:
    """``GET /tracks/{track_id}/similar`` and ``GET|HEAD /audio/{track_id}``: answers about catalog tracks,
    audio streamed only from the catalog folder and the folders tracks were added from."""
    identity = recommender.index.identity
    conditional = StaticFiles(directory=identity["catalog_dir"], check_dir=False)  # for its conditional GET
    audio_roots = [Path(d).resolve() for d in [identity["catalog_dir"], *identity.get("audio_dirs", [])]]

    @app.get("/tracks/{track_id}/similar")
    def similar(
        track_id: str,
        top: int = Query(10, ge=1, le=1000),
        where: list[str] = Query([], description="only tracks with this strong tag (tag or Category=tag)"),
        exclude: list[str] = Query([], description="no track with this strong tag"),
        max_per_artist: int | None = Query(None, ge=1, description="at most this many tracks per artist"),
        exclude_own_artist: bool = Query(False, description="leave out the track's own artist"),
    ) -> Recommendations:
        if track_id not in recommender.index.position:
            raise HTTPException(404, f"no catalog track '{track_id}' in the index")
        own = (recommender.index.tracks.artist.iat[recommender.index.position[track_id]],)
        filters = Filters(tuple(where), tuple(exclude), max_per_artist, own if exclude_own_artist else ())
        try:
            found = recommender.similar(track_id, k=top, filters=filters)
        except QueryError as error:
            raise HTTPException(422, str(error)) from None
        return Recommendations(**recommender.describe(), results=[answer(track_id, found)], errors=[])

    @app.get("/audio/{track_id}", response_class=FileResponse)
    @app.head("/audio/{track_id}", include_in_schema=False)
    def audio(track_id: str, request: Request) -> Response:
        row = recommender.index.position.get(track_id)
        if row is None:
            raise HTTPException(404, f"no catalog track '{track_id}' in the index")
        path = Path(recommender.index.tracks.path.iat[row]).resolve()
        if not any(path.is_relative_to(root) for root in audio_roots):
            raise HTTPException(403, f"track '{track_id}': its audio is outside the catalog folder")
        if not path.is_file():
            raise HTTPException(404, f"track '{track_id}': audio file missing")
        response = FileResponse(path, stat_result=os.stat(path))  # sets ETag and Last-Modified
        if conditional.is_not_modified(response.headers, request.headers):  # Starlette's RFC 9110 check
            return NotModifiedResponse(response.headers)
        return response


async def one_file(request: Request) -> None:
    """Refuse an upload of more than one ``file`` field (422): one would answer and the others be dropped
    unsaid. The form is parsed once; the endpoint reads the same."""
    files = (await request.form()).getlist("file")
    if len(files) > 1:
        names = ", ".join(shortened(getattr(f, "filename", None) or "(a text field)", 40) for f in files[:5])
        raise HTTPException(422, f"one file per request, got {len(files)} 'file' fields ({names}): send one each")
