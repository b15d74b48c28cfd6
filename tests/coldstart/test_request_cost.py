"""What one upload may cost the server, measured in a process of its own (bench/request_cost.py): a file at
the highest sample rate and channel count the defaults admit stays under docs/cold-start.md's peak."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "request_cost.py"
#: One request's peak memory above the warm server, MiB: docs/cold-start.md's worst case (164 MiB for the
#: 30-minute file, rounded up), which a shorter file at the same rate and channel count must not pass
#: either (it took 91 MiB). Before blocks were counted at the working rate, this test's 32 s file took
#: 224 MiB (one 30-s block of 8 channels at 192 kHz).
PEAK_MIB = 180


def test_one_upload_at_the_highest_rate_and_channel_count_stays_under_the_documented_peak(small_index):
    run = subprocess.run(
        [sys.executable, str(BENCH), "--index", str(small_index[0]), "--seconds", "32", "--json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    cost = json.loads(run.stdout)
    assert cost["answer"] == "3 neighbours", "the upload is admitted and answered"
    assert cost["peak_mib"] < PEAK_MIB, f"{cost['peak_mib']:.0f} MiB"
