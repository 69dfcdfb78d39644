"""ONNX Runtime sessions for the gate: CUDA when onnxruntime-gpu and a GPU are there, else the CPU."""

from __future__ import annotations

from pathlib import Path

__all__ = ["RuntimeOptions", "create_session", "resolve_providers"]

PREFERRED = ("CUDAExecutionProvider", "CPUExecutionProvider")
ALIASES = {"cuda": "CUDAExecutionProvider", "cpu": "CPUExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}


class RuntimeOptions:
    """Execution providers (in order of preference) and thread counts, shared by both sessions."""

    def __init__(self, providers: list[str] | None = None, threads: int = 0) -> None:
        self.providers = resolve_providers(providers)
        self.threads = threads


def resolve_providers(requested: list[str] | None) -> list[str]:
    """Full provider names; unknown or unavailable ones are a user error that lists what this install has."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if not requested:
        return [p for p in PREFERRED if p in available]
    names = [ALIASES.get(p.lower(), p) for p in requested]
    missing = [p for p in names if p not in available]
    if missing:
        raise ValueError(
            f"execution provider {', '.join(missing)} is not available in this onnxruntime; "
            f"available: {', '.join(available)} (CUDA needs `make install GPU=1` and a GPU)"
        )
    return names + ([] if "CPUExecutionProvider" in names else ["CPUExecutionProvider"])


def create_session(path: str | Path, options: RuntimeOptions):
    """One InferenceSession; created once per run and reused for every image."""
    import onnxruntime as ort

    session_options = ort.SessionOptions()
    session_options.log_severity_level = 3  # keep ONNX Runtime's own warnings off the user's terminal
    session_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if options.threads:
        session_options.intra_op_num_threads = options.threads
        session_options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), session_options, providers=options.providers)
