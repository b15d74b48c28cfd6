"""What guards the service before an endpoint runs: uploads only from its own page, a bound on the decodes
at once, one file per upload, short echoes of long values, and uvicorn's caps on connections."""

from __future__ import annotations

import socket
import threading

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from builders import LiveServer, one_hz_wav
from conftest import sine
from trackrank import cli
from trackrank.coldstart.recommend import Recommender
from trackrank.coldstart.service import create_app
from trackrank.coldstart.settings import MAX_CONNECTIONS

MIB = 2**20


@pytest.fixture(scope="module")
def recommender(small_index) -> Recommender:
    return Recommender(small_index[0], device="cpu")  # the default limits


@pytest.fixture(scope="module")
def client(recommender) -> TestClient:
    return TestClient(create_app(recommender, MIB, allowed_hosts=["testserver"]))


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    path = tmp_path_factory.mktemp("songs") / "song.wav"
    sf.write(path, np.concatenate([sine(220.0, seconds=7.0, sr=22050), sine(440.0, seconds=7.0, sr=22050)]), 22050)
    return path


def upload(client: TestClient, path, headers=None, **params):
    with open(path, "rb") as stream:
        return client.post("/recommend", files={"file": (path.name, stream)}, params=params, headers=headers)


def test_an_upload_from_another_sites_page_is_refused_unless_its_origin_is_allowed(recommender, client, song):
    """A browser sends a multipart form to any address without a preflight: a page elsewhere must not make
    it upload to the user's local server."""
    refused = upload(client, song, headers={"Origin": "https://attacker.example"})
    assert refused.status_code == 403
    assert refused.json()["detail"] == (
        "POST from a page of https://attacker.example refused: only this service's own page may send it "
        "(trackrank serve --cors-origin allows another site)"
    )
    assert upload(client, song, headers={"Origin": "null"}).status_code == 403  # a sandboxed or file:// page
    assert upload(client, song, headers={"Origin": "http://testserver"}).status_code == 200  # its own page
    assert upload(client, song).status_code == 200  # curl, scripts: no Origin
    shared = TestClient(create_app(recommender, MIB, allowed_hosts=["testserver"], cors_origins=["https://a.example"]))
    assert upload(shared, song, headers={"Origin": "https://a.example"}).status_code == 200


def test_past_the_decodes_at_once_an_upload_gets_503_with_retry_after(recommender, song, monkeypatch):
    entered, release = threading.Event(), threading.Event()
    real = recommender.recommend

    def slow(*args, **kwargs):
        entered.set()
        release.wait(60)
        return real(*args, **kwargs)

    monkeypatch.setattr(recommender, "recommend", slow)
    client = TestClient(create_app(recommender, MIB, allowed_hosts=["testserver"], max_decodes=1, decode_wait_s=0))
    first = []
    worker = threading.Thread(target=lambda: first.append(upload(client, song)))
    worker.start()
    try:
        assert entered.wait(60), "the first upload never reached its decode"
        busy = upload(client, song)
    finally:
        release.set()
        worker.join(60)
    assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
    assert busy.json()["detail"] == "busy: 1 uploads are being decoded, the most at once; try again in 1 s"
    assert first[0].status_code == 200
    assert upload(client, song).status_code == 200, "the slot is given back"


def test_an_upload_of_two_files_is_refused_naming_both(client, song):
    """Before, the second silently won: one answer came back and the other file went unsaid."""
    first, second = song.read_bytes(), song.read_bytes()[:100_000]
    response = client.post("/recommend", files=[("file", ("one.wav", first)), ("file", ("two.wav", second))])
    assert response.status_code == 422
    assert response.json()["detail"] == "one file per request, got 2 'file' fields (one.wav, two.wav): send one each"


def test_a_50_kb_filter_value_is_quoted_short_in_the_refusal(client, song):
    response = upload(client, song, where="x" * 50_000)  # the test client's longest URL is 64 KiB
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert len(detail) < 300 and detail.count("(50,000 characters)") == 2, detail


def test_health_answers_head(client):
    head = client.head("/health")
    assert head.status_code == 200 and head.content == b""


def test_the_issues_1_hz_upload_is_refused_from_its_header_naming_the_rate(client, tmp_path):
    one_hz_wav(tmp_path / "b.wav")
    response = upload(client, tmp_path / "b.wav")
    assert response.status_code == 422
    assert response.json()["detail"] == (
        "'b.wav': sample rate 1 Hz by its header, outside the 8000-192000 Hz accepted (resample it first)"
    )


def test_serve_caps_open_connections_so_idle_ones_cannot_pile_up(recommender):
    server = LiveServer(create_app(recommender, MIB), **cli.server_options())
    idle = [socket.create_connection(("127.0.0.1", server.port), timeout=30) for _ in range(MAX_CONNECTIONS)]
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as connection:
            connection.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            assert connection.recv(4096).startswith(b"HTTP/1.1 503")
    finally:
        for connection in idle:
            connection.close()
        server.stop()


def test_a_1_mb_url_is_refused_without_reaching_the_app_and_the_server_answers_on(recommender):
    """uvicorn's parser refuses a request head past its limit (400, or a reset while the client still sends)
    before anything is buffered whole; the next request is answered as before."""
    server = LiveServer(create_app(recommender, MIB), **cli.server_options())
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as connection:
            try:
                connection.sendall(
                    b"GET /tracks/t0/similar?where=" + b"x" * 2**20 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                )
                answer = connection.recv(4096)
            except ConnectionError:
                answer = b"reset"
        assert answer.startswith(b"HTTP/1.1 400") or answer in (b"reset", b"")
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as connection:
            connection.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            assert connection.recv(4096).startswith(b"HTTP/1.1 200")
    finally:
        server.stop()
