"""Checks every exported model passes before it replaces an earlier export (timm's export habit)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["ExportVerificationError", "check_onnx", "ort_session"]


class ExportVerificationError(RuntimeError):
    """The exported graph is invalid or disagrees with PyTorch; nothing was written to the export folder."""

    def __init__(self, message: str) -> None:
        super().__init__(f"export failed verification: {message}")


def check_onnx(path: str | Path) -> None:
    """``onnx.checker`` on the saved file (by path, so graphs over 2 GB work too)."""
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except onnx.checker.ValidationError as err:
        raise ExportVerificationError(f"{path}: onnx.checker rejected the graph: {err}") from None


def ort_session(path: str | Path):
    """A CPU ONNX Runtime session for verification (the reference runtime, whatever the gate later uses)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
