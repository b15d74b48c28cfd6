"""learn/ has no import circle: each module imports only modules below it, counting every import (under
TYPE_CHECKING and inside functions too), so that a reader can read the stage bottom-up."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

LEARN = Path(__file__).resolve().parents[2] / "src" / "trackrank" / "learn"


def learn_imports(module: Path) -> set[str]:
    """The learn/ modules that ``module`` imports anywhere in it, by name."""
    found = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found |= {name.split(".")[2] for name in names if name.startswith("trackrank.learn.")}
    return found - {module.stem}


def test_learn_has_no_import_circle():
    graph = {module.stem: learn_imports(module) for module in LEARN.glob("*.py")}
    assert graph["loading"] >= {"kinds", "training_data"} and "training_data" in graph["kinds"]
    order = list(graphlib.TopologicalSorter(graph).static_order())  # raises CycleError naming the circle
    assert order.index("training_data") < order.index("kinds") < order.index("loading")
    assert order.index("checkpoints") < order.index("training")
