"""What one request may cost, and how a bad one is told: the service and `trackrank recommend` on a small
index (no workflow run), each refusal with the sentence that names it."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from builders import LiveServer
from conftest import sine
from trackrank import cli
from trackrank.coldstart import recommend as recommend_module
from trackrank.coldstart.recommend import Recommender
from trackrank.coldstart.service import create_app
from trackrank.data import audio

MIB = 2**20


@pytest.fixture(scope="module")
def recommender(small_index) -> Recommender:
    return Recommender(small_index[0], device="cpu", max_duration_s=60.0)


@pytest.fixture(scope="module")
def client(recommender) -> TestClient:
    return TestClient(create_app(recommender, MIB, allowed_hosts=["testserver"]))


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Queries that must be refused (and one short file that padding rescues)."""
    folder = tmp_path_factory.mktemp("queries")
    rng = np.random.default_rng(0)
    made = {
        "bomb": folder / "bomb.wav",  # 10,000 samples at 1 Hz: 20 KB that claims 2.8 hours
        "loud": folder / "loud.wav",  # float samples x 1e30: their CQT power overflows
        "short": folder / "short.wav",
        "text": folder / "notes.mp3",
    }
    sf.write(made["bomb"], rng.uniform(-0.5, 0.5, 10000).astype("float32"), 1, subtype="PCM_16")
    sf.write(made["loud"], (sine(seconds=2.0) * 1e30).astype("float32"), 44100, subtype="FLOAT")
    sf.write(made["short"], sine(seconds=3.0), 44100)
    made["text"].write_text("not audio at all, only words\n" * 10)
    return made


def upload(client: TestClient, path: Path, **params):
    with open(path, "rb") as stream:
        return client.post("/recommend", files={"file": (path.name, stream)}, params=params)


def test_a_file_claiming_hours_is_refused_from_its_header_before_decoding(client, files, monkeypatch):
    decoded = []
    monkeypatch.setattr(audio.soxr, "ResampleStream", lambda *a, **k: decoded.append(a))
    response = upload(client, files["bomb"])
    assert response.status_code == 422
    assert "bomb.wav' lasts 10000 s by its header" in response.json()["detail"]
    assert "longer than the 60 s allowed" in response.json()["detail"]
    assert decoded == [], "nothing is resampled: the header alone refuses it"


def test_a_file_only_the_fallback_decoder_reads_is_cut_at_the_limit_while_decoding(monkeypatch, tmp_path):
    """No header to trust (a format libsndfile cannot open goes to audioread): the decode itself stops
    past the limit, a block after it at most, and the samples decoded are counted against it."""
    sf.write(tmp_path / "long.wav", sine(seconds=20.0), 44100)

    class Unreadable(audio.soundfile.SoundFile):
        def __init__(self, *args, **kwargs):
            raise audio.soundfile.SoundFileRuntimeError("libsndfile: unknown format")

    read = []
    real_decoded = audio._decoded
    monkeypatch.setattr(audio.soundfile, "SoundFile", Unreadable)
    monkeypatch.setattr(audio, "_decoded", lambda *a: (read.append(len(b)) or b for b in real_decoded(*a)))
    with pytest.raises(audio.AudioError, match="decodes to more than the 15 s allowed"):
        list(audio.audio_blocks(tmp_path / "long.wav", max_duration_s=15.0, block_s=1.0))
    assert 16 * 44100 <= sum(read) <= 18 * 44100, "the decoder stopped a block past the limit"


def test_audio_far_outside_full_scale_is_a_named_query_error_not_nan_neighbours(client, files):
    response = upload(client, files["loud"])
    assert response.status_code == 422
    assert "samples reach 5e+29, far outside [-1, 1]" in response.json()["detail"]


def test_a_short_upload_is_padded_over_http_when_asked(client, files):
    refused = upload(client, files["short"])
    assert refused.status_code == 422 and "pad=true over HTTP" in refused.json()["detail"]
    padded = upload(client, files["short"], pad="true")
    assert padded.status_code == 200 and len(padded.json()["results"][0]["neighbours"]) == 3


def test_a_text_file_named_mp3_is_refused_as_not_audio(client, files):
    response = upload(client, files["text"])
    assert response.status_code == 422
    assert response.json()["detail"] == (
        "notes.mp3: not an audio file (its first bytes are no WAV, FLAC, Ogg, MP3, AAC, M4A, AIFF or AU header)"
    )


def test_the_service_is_warm_before_its_first_request(small_index, monkeypatch):
    """Warm-up runs what a first request would pay for the first time: decoding and resampling a file, its
    CQT (librosa's first call alone took 1.5 s) and the model, not the model alone."""
    calls, decoded, resamplers = [], [], []
    real, real_cqt, real_stream = Recommender.embed, recommend_module.track_cqt, audio.soxr.ResampleStream
    monkeypatch.setattr(Recommender, "embed", lambda self, cqt: calls.append(len(cqt)) or real(self, cqt))
    monkeypatch.setattr(recommend_module, "track_cqt", lambda path, **k: decoded.append(path) or real_cqt(path, **k))
    monkeypatch.setattr(audio.soxr, "ResampleStream", lambda *a: resamplers.append(a[:2]) or real_stream(*a))
    create_app(Recommender(small_index[0], device="cpu"), allowed_hosts=["testserver"])
    assert len(decoded) == 1 and len(calls) == 1 and resamplers == [(22050, 44100)]
    assert not Path(decoded[0]).exists(), "the warm-up file is removed"


def test_health_says_which_index_answers(client):
    assert client.get("/health").json() == {"status": "ok", "system": "tl_distance", "n_tracks": 3}


def test_audio_answers_head_and_conditional_gets(client, small_index):
    path = Path(small_index[1][0])
    head = client.head("/audio/t0")
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) == path.stat().st_size
    etag, modified = head.headers["etag"], head.headers["last-modified"]
    assert client.get("/audio/t0", headers={"If-None-Match": etag}).status_code == 304
    assert client.get("/audio/t0", headers={"If-Modified-Since": modified}).status_code == 304
    assert client.get("/audio/t0", headers={"If-None-Match": '"other"'}).content == path.read_bytes()


def test_another_host_name_is_refused_and_cors_is_off_unless_configured(client, recommender):
    assert client.get("/health", headers={"Host": "attacker.example"}).status_code == 400
    assert "access-control-allow-origin" not in client.get("/health", headers={"Origin": "https://a.example"}).headers
    shared = TestClient(create_app(recommender, allowed_hosts=["testserver"], cors_origins=["https://a.example"]))
    allowed = shared.get("/health", headers={"Origin": "https://a.example"})
    assert allowed.headers["access-control-allow-origin"] == "https://a.example"


def test_each_request_leaves_one_json_log_line_with_the_refusal_reason(client, files, caplog):
    with caplog.at_level(logging.INFO, logger="trackrank.coldstart.service"):
        upload(client, files["text"])
        client.get("/health")
    lines = [json.loads(r.message) for r in caplog.records if r.name == "trackrank.coldstart.service"]
    assert [(line["method"], line["path"], line["status"]) for line in lines] == [
        ("POST", "/recommend", 422),
        ("GET", "/health", 200),
    ]
    assert "not an audio file" in lines[0]["reason"] and lines[0]["ms"] >= 0 and "reason" not in lines[1]


def test_the_schema_types_the_answers_and_the_docs_page_needs_no_cdn(client):
    schema = client.get("/openapi.json").json()
    answer = schema["paths"]["/recommend"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer == {"$ref": "#/components/schemas/Recommendations"}
    assert {"Recommendations", "AnswerOut", "NeighbourOut", "Health"} <= set(schema["components"]["schemas"])
    assert client.get("/docs").status_code == 404


@pytest.fixture(scope="module")
def live(recommender):
    """The app under uvicorn on a free local port: what a client that streams its body meets."""
    server = LiveServer(create_app(recommender, MIB))
    yield server.port
    server.stop()


def raw_request(port: int, head: str, body_chunks=()) -> tuple[str, int]:
    """(the response's status line, the body bytes sent before the server answered or closed)."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(head.encode())
        connection.settimeout(0.0)
        for chunk in body_chunks:
            try:
                if connection.recv(1, socket.MSG_PEEK):
                    break  # the server has answered
            except BlockingIOError:
                pass
            try:
                connection.settimeout(5)
                connection.sendall(chunk)
                connection.settimeout(0.0)
            except OSError:
                break  # the server closed the connection
            sent += len(chunk)
        connection.settimeout(30)
        return connection.recv(4096).decode("latin-1").split("\r\n")[0], sent


def test_a_declared_oversized_body_is_refused_before_it_is_sent(live):
    status, _ = raw_request(
        live,
        "POST /recommend HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=x\r\n"
        f"Content-Length: {10 * 2**30}\r\n\r\n",
    )
    assert status.startswith("HTTP/1.1 413")


def test_a_streamed_body_is_cut_off_at_the_limit_not_received_whole(live):
    piece = 64 * 1024
    part = b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
    first = [f"{len(part):x}\r\n".encode() + part + b"\r\n"]
    chunks = (c for c in [*first, *(f"{piece:x}\r\n".encode() + b"\0" * piece + b"\r\n" for _ in range(1024))])
    status, sent = raw_request(
        live,
        "POST /recommend HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=x\r\n"
        "Transfer-Encoding: chunked\r\n\r\n",
        chunks,
    )
    assert status.startswith("HTTP/1.1 413")
    assert sent < 16 * MIB, f"{sent / MIB:.0f} MiB went in before the refusal (limit 1 MiB)"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trackrank.cli", *args], capture_output=True, text=True)


@pytest.mark.parametrize("option", [("--top", "0"), ("--top", "-1"), ("--n-patches", "-1")])
def test_a_count_below_one_is_a_usage_error_not_a_traceback(option, files):
    run = run_cli("recommend", str(files["short"]), *option)
    assert run.returncode == 2 and f"argument {option[0]}: {option[1]}: must be above 0" in run.stderr
    assert "Traceback" not in run.stderr


def test_bad_paths_are_refused_in_one_sentence_before_the_model_loads(files, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(recommend_module.Recommender, "__init__", lambda *a, **k: pytest.fail("the model loaded"))
    assert cli.main(["recommend", str(tmp_path), str(tmp_path / "missing.wav"), str(files["text"])]) == 1
    said = capsys.readouterr().err.splitlines()
    assert said == [
        f"trackrank recommend: {tmp_path}: a folder, not an audio file",
        f"trackrank recommend: {tmp_path / 'missing.wav'}: no such file",
        f"trackrank recommend: {files['text']}: not an audio file (its first bytes are no WAV, FLAC, Ogg, MP3, "
        "AAC, M4A, AIFF or AU header)",
    ]


@pytest.mark.timeout(120)  # opening the FIFO would wait for a writer forever
def test_what_is_no_regular_file_is_named_for_what_it_is_not_no_such_file(tmp_path, monkeypatch, capsys):
    """A FIFO (reading it would wait forever), a symlink loop, a dangling symlink, a device that never
    ends and a /proc file whose size reads 0: each is told as what it is, before the model loads."""
    monkeypatch.setattr(recommend_module.Recommender, "__init__", lambda *a, **k: pytest.fail("the model loaded"))
    os.mkfifo(tmp_path / "pipe.wav")
    (tmp_path / "loop.wav").symlink_to(tmp_path / "loop2.wav")
    (tmp_path / "loop2.wav").symlink_to(tmp_path / "loop.wav")
    (tmp_path / "dangling.wav").symlink_to(tmp_path / "gone.wav")
    paths = [tmp_path / "pipe.wav", tmp_path / "loop.wav", tmp_path / "dangling.wav", "/dev/zero", "/proc/self/status"]
    assert cli.main(["recommend", *map(str, paths)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"trackrank recommend: {paths[0]}: not a regular file (a named pipe), not an audio file",
        f"trackrank recommend: {paths[1]}: a symlink loop (its links lead back to themselves), not an audio file",
        f"trackrank recommend: {paths[2]}: a symlink to {tmp_path / 'gone.wav'}, which does not exist",
        "trackrank recommend: /dev/zero: not a regular file (a character device), not an audio file",
        "trackrank recommend: /proc/self/status: not an audio file (its first bytes are no WAV, FLAC, Ogg, MP3, "
        "AAC, M4A, AIFF or AU header)",
    ]


def test_a_text_file_named_mp3_leaves_no_decoder_noise(files, small_index):
    run = run_cli("recommend", str(files["text"]), "--index", str(small_index[0]))
    assert run.returncode == 1
    assert run.stderr.strip().splitlines() == [
        f"trackrank recommend: {files['text']}: not an audio file (its first bytes are no WAV, FLAC, Ogg, MP3, "
        "AAC, M4A, AIFF or AU header)"
    ]


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_asking_for_cuda_without_it_says_so(files, small_index):
    run = run_cli("recommend", str(files["short"]), "--pad", "--index", str(small_index[0]), "--device", "cuda")
    assert run.returncode == 2
    assert run.stderr.strip() == (
        "trackrank recommend: device 'cuda': this machine has no CUDA device torch can use; use auto or cpu"
    )
