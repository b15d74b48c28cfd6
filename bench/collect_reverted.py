"""Copy a confirmation of the defaults left into bench/results: SRC DST_RESULTS CATALOG [rest | pruned].

    python bench/collect_reverted.py /data/confirm1001/bench bench/results scores1001
    python bench/collect_reverted.py /data/confirm1001/rest bench/results scores1001 rest
    python bench/collect_reverted.py /data/confirm1001/rest bench/results scores1001 pruned

The runs of bench/variants/confirm_reverted_*.json (trained at 81cd0c5) land under the names the docs'
tables read:
- confirm_reverted_<catalog>: X_reverted as X (the defaults of the revert), untrained, mfcc_stats;
- confirm_margin_<catalog>: tl_distance_reverted as tl_distance (0.5), tl_distance_table_negatives as
  tl_distance_margin_0.2;
- confirm_min_epochs_<catalog>: X_reverted as X (min_epochs 20), X_reverted_min_epochs_1 as X_min_epochs_1;
- confirm_pending_<catalog> (confirm_reverted_pending.json): X_reverted as X but for tl_distance, which is
  81cd0c5's (today's), and the value each pending default replaced: online mining batch_all, the tagger's
  rate 1e-4, one offline pair;
- confirm_today_<catalog> (confirm_today.json): today's defaults, without the minimum of epochs and with
  online mining batch_all;
- with ``rest``, alone: confirm_rest_<catalog> (confirm_rest.json, trained with today's code in a folder of its
  own): the other defaults against the values they replaced, under their own names, beside today's defaults
  (there, links to confirm_today's runs under their systems' names), and those of confirm_pruned.json
  (X_pruned), confirm_np.json and confirm_offline_counts.json, trained into the same folder;
- with ``pruned``, alone: confirm_pruned_<catalog>: X_pruned as X (today's defaults without the four options
  that had no confirmed gain alone: smoothing, augmentation, the growing budget, online 42 x 1), with
  confirm_today_<catalog>'s untrained and mfcc_stats (already in DST_RESULTS: the same runs, linked)."""

import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import learning  # noqa: E402  (bench/learning.py: the rows a variants file makes)

src, results, catalog, *kind = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], *sys.argv[4:]
if kind not in ([], ["rest"], ["pruned"]):
    raise SystemExit(f"collect_reverted: the fourth argument is 'rest', 'pruned' or nothing, not {kind}")
systems = ("at_baseline", "at_trunk", "tl_distance", "tl_online", "tl_autopool_online")
#: The variant files (bench/variants/confirm_<name>.json) trained into confirm_rest's output folder.
CONFIRM_REST = ("rest", "pruned", "np", "offline_counts")
reverted = {f"{s}_reverted": s for s in systems}
folders = {
    f"confirm_reverted_{catalog}": {**reverted, "untrained": "untrained", "mfcc_stats": "mfcc_stats"},
    f"confirm_margin_{catalog}": {
        "tl_distance_reverted": "tl_distance",
        "tl_distance_table_negatives": "tl_distance_margin_0.2",
    },
    f"confirm_min_epochs_{catalog}": {
        **reverted,
        **{f"{s}_reverted_min_epochs_1": f"{s}_min_epochs_1" for s in systems},
        # today's tl_distance (81cd0c5's: the batch's negatives at margin 0.2), beside the paper's above
        "tl_distance": "tl_distance_batch",
        "tl_distance_min_epochs_1": "tl_distance_batch_min_epochs_1",
    },
    f"confirm_pending_{catalog}": {  # tl_distance: today's, not the paper's of the revert
        **{source: target for source, target in reverted.items() if target != "tl_distance"},
        **{f"{s}_reverted_batch_all": f"{s}_batch_all" for s in ("tl_online", "tl_autopool_online")},
        **{f"{s}_reverted_lr_1e-4": f"{s}_lr_1e-4" for s in ("at_baseline", "at_trunk")},
        "tl_distance": "tl_distance",  # 81cd0c5's: the batch's negatives at margin 0.2, today's again
        "tl_distance_pairs_1": "tl_distance_offline_pairs_1",
    },
    f"confirm_today_{catalog}": {  # confirm_today.json: today's defaults, no minimum of epochs, batch_all mining
        "at_baseline_reverted_min_epochs_1": "at_baseline",
        "at_trunk_reverted_min_epochs_1": "at_trunk",
        "tl_distance_min_epochs_1": "tl_distance",
        "tl_online_today": "tl_online",
        "tl_autopool_online_today": "tl_autopool_online",
        "untrained": "untrained",
        "mfcc_stats": "mfcc_stats",
    },
}
if kind == ["rest"]:  # confirm_rest's folder alone: elsewhere the systems' names are other defaults' runs
    files = [Path(__file__).parent / "variants" / f"confirm_{name}.json" for name in CONFIRM_REST]
    names = [name for f in files for name in learning.row_names(json.loads(f.read_text()))]
    folders = {f"confirm_rest_{catalog}": {name: name for name in names}}
if kind == ["pruned"]:
    folders = {f"confirm_pruned_{catalog}": {f"{s}_pruned": s for s in systems}}
    for reference in ("untrained", "mfcc_stats"):  # the same runs: linked, not copied again
        link = results / f"confirm_pruned_{catalog}" / reference
        if not link.is_symlink():
            shutil.rmtree(link, ignore_errors=True)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(Path("..") / f"confirm_today_{catalog}" / reference, target_is_directory=True)
for folder, names in folders.items():
    dst = results / folder
    for source, target in names.items():
        for result in sorted((src / source).glob("seed*/result.json")):
            run = result.parent
            if not (run / "metrics" / "test.per_query.parquet").exists():
                continue
            out = dst / target / run.name
            (out / "metrics").mkdir(parents=True, exist_ok=True)
            record = json.loads(result.read_text())
            record["variant"] = source  # its name in bench/variants/confirm_reverted_*.json
            (out / "result.json").write_text(json.dumps(record) + "\n")
            if (run / "history.csv").exists():
                shutil.copy2(run / "history.csv", out)
            for f in (run / "metrics").glob("*"):
                if f.suffix in (".json", ".parquet"):
                    shutil.copy2(f, out / "metrics")
    print(folder, sorted(p.name for p in dst.iterdir()) if dst.exists() else "nothing")
