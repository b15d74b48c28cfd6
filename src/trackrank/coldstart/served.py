"""Which index ``trackrank recommend`` and ``serve`` answer with by default, and why.

Why a module of its own: the choice is the protocol's (docs/evaluation.md, "How a default is chosen"): made
on the **val** split, the test split read only afterwards to report what the choice then measured.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from trackrank.atomic import atomic_output
from trackrank.errors import ConfigError

log = logging.getLogger(__name__)


def choose_served(val_metrics: dict[str, str | Path], *, system: str = "best", metric: str = "ndcg@20") -> str:
    """The system whose index ``trackrank recommend`` and ``serve`` use by default.

    ``system="best"``: the one of ``val_metrics`` (system -> its metrics JSON on the **val** split) with the
    highest ``metric`` (ties: the first listed). The test split is not read: a choice made on it would make its
    numbers selected, not measured. Else ``system`` itself, which must be among them.
    """
    if system != "best":
        if system not in val_metrics:
            raise ConfigError(f"index.system '{system}': not an indexed system ({', '.join(val_metrics)})")
        return system
    scores = {name: json.loads(Path(path).read_text())[metric]["mean"] for name, path in val_metrics.items()}
    return max(scores, key=scores.get)


def write_default(
    val_metrics: dict[str, str | Path],
    test_metrics: dict[str, str | Path],
    output: str | Path,
    served: str | Path | None = None,
    *,
    system: str = "best",
    metric: str = "ndcg@20",
) -> str:
    """Name the default index in ``output`` (JSON) and, in ``served`` (Markdown), say which system serves and
    why, with its val and test ``metric``; returns the system.

    The choice (:func:`choose_served`) reads ``val_metrics`` alone; ``test_metrics`` (system -> its test
    metrics JSON) are read after it, to report what the served system then measured.
    """
    chosen = choose_served(val_metrics, system=system, metric=metric)
    figures = {
        split: json.loads(Path(paths[chosen]).read_text())[metric]
        for split, paths in (("val", val_metrics), ("test", test_metrics))
    }
    by = f"the best val {metric} of {len(val_metrics)} indexed systems" if system == "best" else "index.system"
    record = {"system": chosen, "chosen_by": by, "metric": metric, **figures}
    with atomic_output(output) as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n")
    if served is not None:
        with atomic_output(served) as tmp:
            tmp.write_text(served_markdown(record))
    log.info("default index: %s (%s; val %s %.1f)", chosen, by, metric, figures["val"]["mean"])
    return chosen


def served_markdown(record: dict) -> str:
    """The report's paragraph on the served system: which, chosen how, and its val and test figures."""
    metric = record["metric"]
    cells = [f"{record[split]['mean']:.1f} ± {record[split]['ci95']:.1f}" for split in ("val", "test")]
    return (
        f"`trackrank recommend` and `serve` answer with **{record['system']}** ({record['chosen_by']}).\n\n"
        f"| system | val {metric} (%) | test {metric} (%) |\n|---|---|---|\n"
        f"| {record['system']} | {cells[0]} | {cells[1]} |\n"
    )
