"""What one upload may cost the server: CPU seconds and peak memory of the worst query the default limits
admit, measured in a process of its own.

Why: docs/cold-start.md states the worst case per request, and tests/coldstart/test_request_cost.py holds
it. The worst upload is the longest file (``MAX_DURATION_S``) at the highest sample rate and channel count
admitted (``SAMPLE_RATES``, ``MAX_CHANNELS``): every second of it is decoded, mixed, resampled and turned
into a CQT. A tone one second in eight and silence between is FLAC's easy case, so 30 minutes of 8
channels at 192 kHz fit under the 100 MiB upload limit.

The child loads the index's recommender and warms it up (as ``trackrank serve`` does before it listens),
then resets its peak resident memory (``/proc/self/clear_refs``) and answers the one query; the figures are
its CPU time (user + system) and peak resident memory (VmHWM) above its resident size before the query.

    python bench/request_cost.py --index results/index [--seconds 1800] [--json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from trackrank.coldstart.settings import MAX_CHANNELS, MAX_DURATION_S, MAX_UPLOAD_MB, SAMPLE_RATES

CHILD = """
import json, resource, sys
from trackrank.coldstart.recommend import Recommender
from trackrank.errors import QueryError

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024

recommender = Recommender(sys.argv[1], device="cpu")
recommender.warm_up()
with open("/proc/self/clear_refs", "w") as reset:
    reset.write("5")  # the peak resident size starts again from the current one
before, start = status("VmRSS:"), resource.getrusage(resource.RUSAGE_SELF)
try:
    answer = f"{len(recommender.recommend(sys.argv[2], k=10).neighbours)} neighbours"
except QueryError as error:
    answer = f"refused: {error}"
end = resource.getrusage(resource.RUSAGE_SELF)
cpu = end.ru_utime - start.ru_utime + end.ru_stime - start.ru_stime
print(json.dumps({"cpu_s": cpu, "rss_before_mib": before, "peak_mib": status("VmHWM:") - before, "answer": answer}))
"""


def write_worst_upload(
    path: Path, seconds: float, *, rate: int = SAMPLE_RATES[1], channels: int = MAX_CHANNELS
) -> None:
    """A quiet 220 Hz tone one second in every eight, silence between, on ``channels`` channels at ``rate``,
    written a second at a time (FLAC: the silence takes its constant frames, so 30 minutes at 192 kHz on 8
    channels stay under the 100 MiB upload limit; every sample is decoded all the same)."""
    t = np.arange(rate) / rate
    tone = np.repeat((0.1 * np.sin(2 * np.pi * 220.0 * t))[:, None], channels, axis=1).astype(np.float32)
    silence = np.zeros_like(tone)
    with sf.SoundFile(path, "w", rate, channels, format="FLAC", subtype="PCM_16") as out:
        for second in range(int(np.ceil(seconds))):
            out.write(tone if second % 8 == 0 else silence)


def request_cost(index: str | Path, upload: str | Path) -> dict:
    """CPU seconds, peak MiB above the resting size and the answer of one query of ``upload`` (a child process)."""
    run = subprocess.run([sys.executable, "-c", CHILD, str(index), str(upload)], capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"the measuring process failed:\n{run.stderr[-3000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", required=True, help="index folder (results/index or results/index/<system>)")
    parser.add_argument("--seconds", type=float, default=MAX_DURATION_S, help="length of the upload")
    parser.add_argument("--json", action="store_true", help="one JSON line")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        upload = Path(folder) / "worst.flac"
        write_worst_upload(upload, args.seconds)
        size_mib = upload.stat().st_size / 2**20
        cost = request_cost(args.index, upload) | {"upload_mib": size_mib, "seconds": args.seconds}
    if args.json:
        print(json.dumps(cost))
        return
    print(
        f"upload: {args.seconds:.0f} s, {SAMPLE_RATES[1]} Hz, {MAX_CHANNELS} channels, FLAC, {size_mib:.1f} MiB "
        f"(limit {MAX_UPLOAD_MB:.0f} MiB)\n"
        f"one request: {cost['cpu_s']:.1f} CPU s, peak {cost['peak_mib']:.0f} MiB above the warm server's "
        f"{cost['rss_before_mib']:.0f} MiB; answer: {cost['answer']}"
    )


if __name__ == "__main__":
    main()
