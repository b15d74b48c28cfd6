"""Benchmark: one training step and one validation pass, channels-last conv weights against contiguous.

Why: at the demo's width a CPU step is dominated by the first conv block's memory traffic
(a 42 x 8 x 96 x 512 activation through conv, batch norm, ELU and max-pool); trackrank's
ConvTrunk keeps its weights channels-last (trackrank.learn.models), and this says what that buys.

For each architecture, the same weights and the same random batch of CQT patches, timed in
alternation (contiguous, channels-last, ...) so that a noisy machine slows both alike:
  step   forward, loss, backward and an Adam step on --batch patches (train mode);
  embed  forward of --batch patches without gradients (eval mode, as validation and embedding).
Prints the median seconds of each and the ratio contiguous / channels-last (> 1: channels-last
is faster), and the largest difference between the two layouts' embeddings (float rounding only).

Usage: python bench/memory_format.py [--width 0.0625] [--batch 126] [--repeats 5] [--threads 1] [--device auto]
"""

from __future__ import annotations

from trackrank.learn.settings import with_malloc_settings

with_malloc_settings()  # as the workflow's jobs run

import argparse  # noqa: E402  (after the re-exec)
import copy
import statistics
import time

import torch

from trackrank.learn.embedding import choose_device
from trackrank.learn.models import build_model

ARCHITECTURES = ("fcn5_tagger", "triplet", "autopool_triplet")


def timed(function, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    function()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def train_step(model: torch.nn.Module, patches: torch.Tensor):
    """One training step on ``patches`` (train mode, its own Adam), as a function to time."""
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), 1e-4)

    def step() -> None:
        loss = model(patches).float().pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


def embed(model: torch.nn.Module, patches: torch.Tensor):
    """One forward pass on ``patches`` without gradients (eval mode), as a function to time."""
    model.eval()

    def forward() -> torch.Tensor:
        with torch.no_grad():
            return model(patches)

    return forward


PASSES = {"step": train_step, "embed": embed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=float, default=0.0625)
    parser.add_argument("--batch", type=int, default=126, help="patches per step (126: an offline TL step of 42 pairs)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = choose_device(args.device)
    patches = torch.randn(args.batch, 96, 512, generator=torch.Generator().manual_seed(0)).mul(15).sub(50).to(device)
    print(f"width {args.width}, {args.batch} patches, {args.threads} thread(s), {device}, median of {args.repeats}")
    print(f"{'architecture':<18} {'pass':<6} {'contiguous s':>13} {'channels-last s':>16} {'ratio':>6}")
    for architecture in ARCHITECTURES:
        torch.manual_seed(0)
        last = build_model(architecture, n_tags=36, width=args.width).to(device)  # as trackrank builds it
        plain = copy.deepcopy(last).to(memory_format=torch.contiguous_format)
        models = {"contiguous": plain, "channels_last": last}
        with torch.no_grad():
            gap = (plain.eval()(patches) - last.eval()(patches)).abs().max().item()
        for name, build in PASSES.items():
            times: dict[str, list[float]] = {key: [] for key in models}
            passes = {key: build(model, patches) for key, model in models.items()}
            for run in passes.values():
                run()  # warm-up
            for _ in range(args.repeats):
                for key in models:
                    times[key].append(timed(passes[key], device))
            plain_s, last_s = (statistics.median(times[key]) for key in models)
            print(f"{architecture:<18} {name:<6} {plain_s:>13.3f} {last_s:>16.3f} {plain_s / last_s:>5.2f}x")
        print(f"{architecture:<18} largest embedding difference between the layouts: {gap:.2e}")


if __name__ == "__main__":
    main()
