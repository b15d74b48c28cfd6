"""The HTTP service of ``trackrank serve``: recommendations for uploaded audio, as JSON and as a page.

- ``POST /recommend``: multipart field ``file``; the JSON of ``trackrank recommend --json`` for it.
- ``GET /tracks/{track_id}/similar?top=10``: the neighbours of a catalog track.
- ``GET /audio/{track_id}``: a catalog track's audio, read-only, only from inside the catalog folder.
- ``GET /``: a page where a person drops an audio file and hears the top 10.

Endpoints are plain functions, so the ASGI server runs them in its thread pool; the model is
shared behind the recommender's lock.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from fastapi import FastAPI, File, HTTPException, Query, UploadFile
from fastapi.responses import FileResponse, HTMLResponse

from trackrank.coldstart.recommend import Recommender, answer
from trackrank.errors import QueryError

PAGE = Path(__file__).with_name("service_page.html")
#: Suffixes kept on uploads, so the decoder can tell the format; anything else is decoded by content.
AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".aif", ".aiff", ".au"}


def create_app(recommender: Recommender, max_upload_bytes: int = 100 * 2**20) -> FastAPI:
    """The ASGI app around one recommender."""
    app = FastAPI(title="trackrank", description="Catalog tracks that sound like an audio file (cold start).")
    catalog_root = Path(recommender.index.identity["catalog_dir"]).resolve()

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return PAGE.read_text(encoding="utf-8")

    @app.post("/recommend")
    def recommend(file: UploadFile = File(...), top: int = Query(10, ge=1, le=1000)) -> dict:
        name = Path(file.filename or "upload").name
        suffix = Path(name).suffix.lower()
        data = file.file.read(max_upload_bytes + 1)
        if len(data) > max_upload_bytes:
            raise HTTPException(413, f"{name}: larger than the {max_upload_bytes / 2**20:.0f} MiB upload limit")
        if not data:
            raise HTTPException(422, f"{name}: empty upload")
        with tempfile.NamedTemporaryFile(suffix=suffix if suffix in AUDIO_SUFFIXES else "") as stream:
            stream.write(data)
            stream.flush()
            try:
                found = recommender.recommend(stream.name, k=top)
            except QueryError as error:
                raise HTTPException(422, str(error).replace(stream.name, name)) from None
        return {**recommender.describe(), "results": [answer(name, found)], "errors": []}

    @app.get("/tracks/{track_id}/similar")
    def similar(track_id: str, top: int = Query(10, ge=1, le=1000)) -> dict:
        if track_id not in recommender.index.position:
            raise HTTPException(404, f"no catalog track '{track_id}' in the index")
        return {
            **recommender.describe(),
            "results": [answer(track_id, recommender.similar(track_id, k=top))],
            "errors": [],
        }

    @app.get("/audio/{track_id}")
    def audio(track_id: str) -> FileResponse:
        row = recommender.index.position.get(track_id)
        if row is None:
            raise HTTPException(404, f"no catalog track '{track_id}' in the index")
        path = Path(recommender.index.tracks.path.iat[row]).resolve()
        if not path.is_relative_to(catalog_root):
            raise HTTPException(403, f"track '{track_id}': its audio is outside the catalog folder")
        if not path.is_file():
            raise HTTPException(404, f"track '{track_id}': audio file missing")
        return FileResponse(path)

    return app
