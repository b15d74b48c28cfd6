"""A finished run's offline triplet table mined again at another Np and Nn, for a variant's ``"triplets"``.

The workflow mines the train split at ``mining.n_positives`` and ``mining.n_negatives``; to train an offline
system at other counts (5 and 77, say) beside the run's own without rerunning the workflow,
mine one strategy's table into a file of its own and name it in a variant of bench/learning.py:

    python bench/mine_triplets.py --results results --n-positives 5 --n-negatives 77 --out /tmp/np5_nn77.parquet
    # variant: {"system": "tl_distance", "triplets": "/tmp/np5_nn77.parquet"}

The same S (the config's ``similarity``) and seed as the run's tables.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import learning  # noqa: E402  (bench/learning.py: the config as the workflow sees it)

REPO = learning.REPO


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, required=True, help="a finished run's results/ folder")
    parser.add_argument("--config", type=Path, default=REPO / "config.yaml")
    parser.add_argument("--strategy", default="distance", choices=["neighbors", "uniform", "distance"])
    parser.add_argument("--n-positives", type=int, required=True, help="Np: positives per anchor")
    parser.add_argument("--n-negatives", type=int, required=True, help="Nn: negatives per positive")
    parser.add_argument("--out", type=Path, required=True, help="the table's Parquet file (must not exist)")
    args = parser.parse_args()
    if args.out.exists():
        parser.error(f"--out {args.out}: exists; trackrank writes a new file, never over one")

    from trackrank.data.catalog import CatalogFiles
    from trackrank.rank.mining import write_triplet_tables
    from trackrank.rank.similarity import split_oracle
    from trackrank.workflow_settings import mining_settings, similarity_settings

    config = learning.load_config(args.config)
    catalog = CatalogFiles.in_folder(args.results / "catalog")
    track_ids, oracle = split_oracle(catalog, "train", **similarity_settings(config))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    settings = {**mining_settings(config), "n_positives": args.n_positives, "n_negatives": args.n_negatives}
    written = write_triplet_tables(oracle, track_ids, outputs={args.strategy: args.out}, **settings)
    print(f"{args.out}: {written[args.strategy]} {args.strategy} triplets of {len(track_ids)} train anchors")


if __name__ == "__main__":
    sys.exit(main())
