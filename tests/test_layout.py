"""The package's layout holds: every module imports only modules below it in :data:`LAYERS`, imports inside
functions included, so there is no import circle and the course's core never reaches up into the tools."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "emo"

#: Lowest first. The course's core (with what it needs to run: torchrun's processes, the ONNX Runtime path of
#: load_model) ends with ``trainer``; the tools, the commands and the apps sit above it (README's Layout).
CORE = ["files", "images", "network", "preprocess", "synthetic", "losses", "augment", "fastpath", "hooks",
        "distributed", "faces", "mtcnn", "tracking", "datasets", "importers", "splits", "plots", "checkpoint",
        "onnx_model", "model", "evaluation", "recipe", "saliency", "pipeline", "video", "trainer"]
TOOLS = ["inference_search", "finetune", "swa", "distill", "peers", "soup", "ensemble", "trainbench", "bench"]
COMMANDS = ["cli", "train", "ablation", "evaluate", "export", "predict", "data", "app", "widget", "nbclean",
            "__init__"]
LAYERS = CORE + ["inference_search", "finetune", "swa", "distill", "peers", "cli", "soup", "ensemble", "train",
                 "trainbench", "bench", "ablation", "evaluate", "export", "predict", "data", "app", "widget", "nbclean",
                 "__init__"]


def emo_imports(path: Path) -> set[str]:
    """The ``emo`` modules that the file at ``path`` imports when it runs, wherever the import statement stands
    (imports under ``if TYPE_CHECKING:`` are for type checkers only, and left out)."""
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for child in node.body for n in ast.walk(child)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("emo.")}
        elif isinstance(node, ast.ImportFrom) and node.module and (node.module == "emo" or
                                                                   node.module.startswith("emo.")):
            if node.module == "emo":
                found |= {a.name for a in node.names if (PACKAGE / f"{a.name}.py").exists()}
            else:
                found.add(node.module.split(".")[1])
    return found - {path.stem}


MODULES = sorted(p.stem for p in PACKAGE.glob("*.py"))


def test_every_module_has_a_place_in_the_layers():
    assert sorted(LAYERS) == MODULES and len(set(LAYERS)) == len(LAYERS)
    assert set(CORE) | set(TOOLS) | set(COMMANDS) == set(LAYERS)


@pytest.mark.parametrize("module", MODULES)
def test_a_module_imports_only_modules_below_it(module):
    below = set(LAYERS[:LAYERS.index(module)])
    above = emo_imports(PACKAGE / f"{module}.py") - below
    assert not above, f"emo/{module}.py imports {sorted(above)}, which stand at or above it in LAYERS"


def test_the_network_stands_alone_and_the_core_never_imports_a_tool():
    assert emo_imports(PACKAGE / "network.py") == set()
    for module in CORE:
        assert not emo_imports(PACKAGE / f"{module}.py") & (set(TOOLS) | set(COMMANDS) - {"__init__"}), module


def test_the_checker_sees_imports_inside_functions(tmp_path):
    """The check itself can fail: an import hidden in a function is found."""
    f = tmp_path / "x.py"
    f.write_text("def late():\n    from emo.train import main\n    import emo.bench\n    from emo import data\n")
    assert emo_imports(f) == {"train", "bench", "data"}
