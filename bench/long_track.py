"""Peak memory of one long track's CQT: the whole signal at once (librosa.load + cqt_db) against the
feature stage's block decoding and chunked CQT (trackrank.data.features.track_cqt).

    python bench/long_track.py --minutes 20 --rate 44100 --channels 2

Each way runs in its own process; the figure is that process's peak resident memory (ru_maxrss).
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

WAYS = {
    "whole": "import librosa; from trackrank.data.features import cqt_db; "
    "y, _ = librosa.load(PATH, sr=44100, mono=True, res_type='soxr_hq'); cqt = cqt_db(y)",
    "chunked": "from trackrank.data.features import track_cqt; cqt = track_cqt(PATH)",
}


def write_long_file(path: Path, minutes: float, rate: int, channels: int) -> None:
    """A chirp plus noise, written a minute at a time (the test file itself never sits in memory)."""
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", rate, channels, format="FLAC") as out:
        for minute in range(int(np.ceil(minutes))):
            t = minute * 60 + np.arange(60 * rate) / rate
            y = 0.3 * np.sin(2 * np.pi * (100 + 5 * np.sin(t)) * t) + 0.02 * rng.standard_normal(len(t))
            out.write(np.repeat(y[:, None], channels, axis=1).astype(np.float32))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--rate", type=int, default=44100)
    parser.add_argument("--channels", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "long.flac"
        write_long_file(path, args.minutes, args.rate, args.channels)
        for way, code in WAYS.items():
            script = f"{code.replace('PATH', repr(str(path)))}; import resource; " + (
                "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, cqt.shape[0])"
            )
            start = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
            peak_kib, frames = map(int, out.split())
            seconds = time.perf_counter() - start
            print(f"{way}: peak {peak_kib / 1024:.0f} MiB, {frames} frames, {seconds:.1f} s")
    print(f"(this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB)")


if __name__ == "__main__":
    main()
