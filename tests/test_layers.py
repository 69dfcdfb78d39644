"""The layers of ARCHITECTURE.md, enforced: imports go one way, the screening path needs only the base install, and
every command run without the extra it needs says which one in one line.

The import graph is read from the source (the AST) rather than with import-linter: yolo_spine holds modules of two
layers (training; export and evaluation), which import-linter's layers, made of whole packages, cannot split; and the
torch-free rule concerns module-level imports only (the gate's --explain imports torch on purpose, when asked),
which its forbidden contracts, following every import, cannot express.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("dernet", "yolo_spine", "benchmarks")

# Module (or package) -> layer, bottom to top; the longest matching prefix decides. A new module must find its place.
LAYERS = {
    "dernet": 1,  # the package itself and its small shared helpers: errors, fileio, config, cliutil, inputs, ...
    "dernet.imaging": 1,
    "dernet.deploy": 1,
    "dernet.datasets": 2,
    "dernet.metrics": 2,
    "dernet.ensemble": 3,
    "dernet.training": 3,
    "yolo_spine": 3,
    "dernet.detectors": 3,
    "dernet.export": 4,
    "dernet.evaluation": 4,
    "dernet.explain": 4,
    "dernet.study": 4,
    "yolo_spine.export": 4,
    "yolo_spine.evaluate": 4,
    "dernet.detectors.evaluate": 4,
    "dernet.detectors.export": 4,
    "dernet.detectors.compare": 4,
    "dernet.detectors.fuse": 4,
    "dernet.gate": 5,
    "dernet.web": 5,
    "dernet.dicom_results": 5,
    "dernet.node": 5,
    "dernet.batch": 5,
    "benchmarks": 5,
}
# The screening path: what `pip install 'spine-cad[cpu]'` (plus the web extra for dernet.web) must run.
SCREENING = ("dernet.imaging", "dernet.deploy", "dernet.gate", "dernet.web")
# the base install and the cpu extra
BASE = {"numpy", "cv2", "pydicom", "PIL", "yaml", "tqdm", "pebble", "pydantic", "onnxruntime"}
WEB = {"fastapi", "starlette", "uvicorn"}
LAZY = {"onnxruntime", "openvino", "uvicorn", "ensemble_boxes", "lightgbm"}  # imported inside functions, only when
# a variant, a server, box fusion or an export's study model asks


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = _modules()


def _layer(module: str) -> int:
    matches = [prefix for prefix in LAYERS if module == prefix or module.startswith(prefix + ".")]
    if not matches:
        raise AssertionError(f"{module}: no layer; add it to LAYERS in tests/test_layers.py (and ARCHITECTURE.md)")
    return LAYERS[max(matches, key=len)]


def _is_package(module: str) -> bool:
    return MODULES[module].name == "__init__.py"


def _imports(module: str) -> list[tuple[str, bool]]:
    """(imported module, at module level?) for every import in ``module``, relative ones resolved."""
    tree = ast.parse(MODULES[module].read_text())
    package = module if _is_package(module) else module.rpartition(".")[0]
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, top: bool) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return  # annotations only
        if isinstance(node, ast.Import):
            found.extend((alias.name, top) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((base, top))
            found.extend((f"{base}.{alias.name}", top) for alias in node.names if f"{base}.{alias.name}" in MODULES)
        inner = top and not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(tree, True)
    return found


def _internal(name: str) -> bool:
    return name.split(".")[0] in PACKAGES


def test_every_module_has_a_layer() -> None:
    for module in MODULES:
        _layer(module)


def test_imports_go_one_way() -> None:
    upward = [
        f"{module} (layer {_layer(module)}) imports {target} (layer {_layer(target)})"
        for module in MODULES
        for target, _ in _imports(module)
        if _internal(target) and target in MODULES and _layer(target) > _layer(module)
    ]
    assert not upward, "\n".join(upward)


@pytest.mark.parametrize("module", [m for m in MODULES if m.startswith(SCREENING)])
def test_the_screening_path_imports_only_the_base_install(module: str) -> None:
    allowed = BASE | (WEB if module.startswith("dernet.web") else set())
    stdlib = sys.stdlib_module_names
    for target, top in _imports(module):
        root = target.split(".")[0]
        if _internal(target) or root in stdlib or root == "__future__":
            continue
        if top:
            assert root in allowed, f"{module} imports {target} at module level: not in the screening install"
        else:
            assert root in LAZY, f"{module} imports {target}: not in the screening install, even lazily"


TRAINING_STACK = {"torch", "torchvision", "timm", "pytorch_lightning", "lightning", "ultralytics"}


@pytest.mark.parametrize("module", [m for m in MODULES if m.startswith(("dernet.node", "dernet.batch"))])
def test_the_deployment_front_ends_never_import_training(module: str) -> None:
    """The node and batch screening run on the screening install plus their own extra: nothing of layer 3."""
    for target, _ in _imports(module):
        internal_training = _internal(target) and target in MODULES and _layer(target) == 3
        assert not internal_training and target.split(".")[0] not in TRAINING_STACK, f"{module} imports {target}"


# --- a small install, simulated: the optional extras' modules cannot be imported --------------------------------------


def _without(extras: str, module: str, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    command = [sys.executable, str(ROOT / "tests" / "without_extras.py"), extras, module, *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=120)


def test_the_gate_screens_without_the_training_stack(exported_models: Path, phantom_dir: Path, tmp_path) -> None:
    image = next((phantom_dir / "test_images").iterdir())
    done = _without("train,web,openvino", "dernet.gate", str(image), "--models", str(exported_models),
                    "--out", str(tmp_path))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert list(tmp_path.glob("*.json")) and list(tmp_path.glob("*.overlay.png"))


TRAINING_COMMANDS = [
    ("dernet", ["fit", "--config", "configs/demo/ensemble/densenet121.yaml"]),
    ("dernet.datasets", ["synth", "--out", "unused"]),
    ("dernet.export", []),
    ("dernet.export.quantize", ["--models", "unused"]),
    ("dernet.evaluation", ["--models", "unused"]),
    ("dernet.explain", ["unused.dcm"]),
    ("yolo_spine.train", ["--config", "configs/demo/yolo_spine.yaml"]),
    ("yolo_spine.evaluate", ["--weights", "unused.pt"]),
    ("yolo_spine.export", ["--weights", "unused.pt"]),
    ("dernet.cli", ["export"]),
    ("dernet.cli", ["train-yolo"]),
]


@pytest.mark.parametrize(("module", "args"), TRAINING_COMMANDS, ids=[m for m, _ in TRAINING_COMMANDS])
def test_a_training_command_without_the_train_extra_says_so_in_one_line(module: str, args: list[str]) -> None:
    done = _without("train", module, *args)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "pip install 'spine-cad[train]'" in done.stderr, done.stderr


def test_the_web_server_without_the_web_extra_says_so_in_one_line() -> None:
    done = _without("web", "dernet.web", "--models", "unused")
    assert done.returncode == 2 and "pip install 'spine-cad[web]'" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
