"""Data flows one way: config -> data -> model -> loop -> record -> analysis.

Each module of ``harness/`` may import only modules of earlier layers (or its own
package), and none imports a harness module inside a function except the fit,
which the sweep imports late so that harness-train never loads scipy and matplotlib.
"""
import ast
from pathlib import Path

HARNESS = Path(__file__).resolve().parent.parent / "harness"

# earlier layers first; a module may import from its own layer's package and below
LAYERS = [
    ["harness", "harness.atomic", "harness.hardware", "harness.schedule", "harness.slurm", "harness.slurm_prestart", "harness.tracking"],
    ["harness.config"],
    ["harness.data"],
    ["harness.model"],
    ["harness.records"],
    ["harness.checkpoint", "harness.coord_check"],
    ["harness.train"],
    ["harness.validation"],
    ["harness.analysis"],
    ["harness.sweep"],
    ["harness.bench", "harness.cli"],
]
LATE_IMPORTS = {("harness.sweep", "harness.analysis")}


def layer(module: str) -> int:
    best = None
    for i, names in enumerate(LAYERS):
        for n in names:
            if (module == n or module.startswith(n + ".")) and (best is None or len(n) > len(best[1])):
                best = (i, n)
    assert best is not None, f"{module} is in no layer"
    return best[0]


def modules():
    for path in sorted(HARNESS.rglob("*.py")):
        parts = path.relative_to(HARNESS.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, ast.parse(path.read_text())


def harness_imports(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("harness"):
            yield node, node.module
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("harness"):
                    yield node, a.name


def test_imports_point_downstream_only():
    for name, tree in modules():
        if name.startswith("harness.analysis"):
            continue  # the fit's own package; it imports only records from the rest
        for _, imported in harness_imports(tree):
            assert layer(imported) <= layer(name), f"{name} imports {imported}, a later layer"


def test_no_function_level_imports_of_harness_modules():
    for name, tree in modules():
        if name.startswith("harness.analysis"):
            continue
        top = {id(n) for n in tree.body}
        for node, imported in harness_imports(tree):
            if id(node) not in top and (name, imported) not in LATE_IMPORTS:
                raise AssertionError(f"{name} imports {imported} inside a function")
