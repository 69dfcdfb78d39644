"""Errors by type: a :class:`UserError` is the user's to fix (every command prints it as one line and exits with its
code); anything else is a bug and keeps its traceback."""

from __future__ import annotations

import importlib.util

__all__ = [
    "EXTRA_OF_MODULE",
    "MissingExtraError",
    "MissingFileError",
    "UsageError",
    "UserError",
    "missing_extra",
    "require_extra",
]


class UserError(Exception):
    """A mistake the user can fix (a wrong path, config, manifest, value or input); the message names the file or
    value and says what to do. Command lines print ``error: <message>`` and exit with :attr:`exit_code`."""

    exit_code = 2


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder the user named, or a step they have not run yet, is not there."""


class UsageError(UserError, ValueError):
    """A value, option or dataset that cannot do what was asked (an empty split, an unknown variant, ...)."""


class MissingExtraError(UserError, ImportError):
    """The command needs an optional extra of the spine-cad distribution that this install lacks."""

    def __init__(self, module: str, extra: str) -> None:
        self.module, self.extra = module, extra
        super().__init__(
            f"this needs the '{extra}' extra ({module} is not installed): pip install 'spine-cad[{extra}]'"
        )


# Top-level modules of the optional extras (pyproject.toml) and the extra that brings each. The base install
# (numpy, OpenCV, pydicom, Pillow, PyYAML, tqdm) screens; everything else is an extra.
_TRAIN_MODULES = ("torch", "torchvision", "timm", "pytorch_lightning", "jsonargparse", "albumentations", "ultralytics",
                  "onnx", "pycocotools", "sklearn", "pandas", "matplotlib", "pytorch_grad_cam")  # fmt: skip
EXTRA_OF_MODULE = {
    **dict.fromkeys(_TRAIN_MODULES, "train"),
    **dict.fromkeys(("fastapi", "starlette", "uvicorn", "multipart"), "web"),
    "onnxruntime": "cpu",
    "openvino": "openvino",
    "highdicom": "dicom",
    "pynetdicom": "dicom",
    "ensemble_boxes": "fusion",
    "numba": "fusion",
    "ray": "scale",
    "pyarrow": "scale",
    "optuna": "tune",
    "sqlalchemy": "tune",
    "lightgbm": "study",
}


def missing_extra(err: ModuleNotFoundError) -> MissingExtraError | None:
    """The :class:`MissingExtraError` that ``err`` stands for, or None when the missing module is no extra's (a bug)."""
    top = (err.name or "").split(".")[0]
    extra = EXTRA_OF_MODULE.get(top)
    return MissingExtraError(top, extra) if extra else None


def require_extra(extra: str) -> None:
    """Raise :class:`MissingExtraError` unless every module of ``extra`` can be imported: commands call this first,
    so that a missing extra is named before any work, not after it (nothing is imported here)."""
    for module, owner in EXTRA_OF_MODULE.items():
        if owner != extra:
            continue
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a finder refusing the name, or a half-installed package
            found = False
        if not found:
            raise MissingExtraError(module, extra)
