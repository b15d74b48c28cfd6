"""The cold-start stage's names and config mapping, free of torch and FAISS: the workflow reads them
when it builds its DAG, and the CLI parser offers the same index kinds."""

from __future__ import annotations

from trackrank.learn.settings import TRUNK_SYSTEM, system_spec

#: The longest query accepted by default, in seconds: past any track of a normal album (a whole CD
#: holds at most 80 minutes); the CPU time and memory one request can cost follow from it.
MAX_DURATION_S = 1800.0
#: The largest upload ``trackrank serve`` accepts by default, in MiB (30 minutes of 16-bit stereo WAV
#: at 44.1 kHz is 303 MiB; compressed formats are a tenth of that).
MAX_UPLOAD_MB = 100.0

#: The sample rates a query may have, Hz, read from its header: telephone audio to 192 kHz masters.
#: Outside it a small file costs what no song needs: 1,700 samples at 1 Hz (3.4 KB) resample to 75 M samples.
SAMPLE_RATES = (8000, 192000)
#: The most channels a query may have (7.1 surround); a decoded block's memory grows with them.
MAX_CHANNELS = 8
#: Uploads ``trackrank serve`` decodes at once; the others wait up to ``DECODE_WAIT_S`` seconds for a
#: turn, then get 503 with Retry-After. The server's peak memory is its resting size plus about this
#: many times one request's (docs/cold-start.md measures both).
MAX_DECODES = 2
DECODE_WAIT_S = 10.0

#: Connections ``trackrank serve`` holds open at once (uvicorn's ``limit_concurrency``): past it a request
#: gets 503, so idle or slow clients cannot pile up threads and sockets without end.
MAX_CONNECTIONS = 32
#: Seconds an idle kept-alive connection stays open after its last answer (uvicorn's ``timeout_keep_alive``).
KEEP_ALIVE_S = 5

#: FAISS index kinds: exact inner product, or approximate (graph, inverted lists) for large catalogs.
INDEX_KINDS = ("exact", "hnsw", "ivf")


def indexable(system: str) -> bool:
    """A system that embeds tracks, so an index can hold it: a TL system, or ``at_trunk`` (the auto-tagger's
    trunk); the auto-tagger itself outputs tags."""
    return system == TRUNK_SYSTEM or system_spec(system)[0] != "fcn5_tagger"
