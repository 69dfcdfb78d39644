"""Inference engines for the exported models: ONNX Runtime (fp32 or int8 QDQ files; CUDA when onnxruntime-gpu and a
GPU are there) and, when the optional `openvino` extra is installed, OpenVINO with a precision hint on the same ONNX
files (variants: dernet/deploy/variants.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import MissingExtraError, UsageError
from .variants import VARIANTS, Variant

__all__ = ["InferenceModel", "RuntimeOptions", "create_session", "load_model", "resolve_providers"]

PREFERRED = ("CUDAExecutionProvider", "CPUExecutionProvider")
ALIASES = {"cuda": "CUDAExecutionProvider", "cpu": "CPUExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}


class RuntimeOptions:
    """Execution providers (in order of preference) and thread counts, shared by both models."""

    def __init__(self, providers: list[str] | None = None, threads: int = 0) -> None:
        self.providers = resolve_providers(providers)
        self.threads = threads


def _onnxruntime():
    try:
        import onnxruntime as ort
    except ModuleNotFoundError:
        raise MissingExtraError("onnxruntime", "cpu") from None  # or 'gpu': either extra brings it
    return ort


def resolve_providers(requested: list[str] | None) -> list[str]:
    """Full provider names; unknown or unavailable ones are a user error that lists what this install has."""
    available = _onnxruntime().get_available_providers()
    if not requested:
        return [p for p in PREFERRED if p in available]
    names = [ALIASES.get(p.lower(), p) for p in requested]
    missing = [p for p in names if p not in available]
    if missing:
        raise UsageError(
            f"execution provider {', '.join(missing)} is not available in this onnxruntime; "
            f"available: {', '.join(available)} (CUDA needs `make install GPU=1` and a GPU)"
        )
    return names + ([] if "CPUExecutionProvider" in names else ["CPUExecutionProvider"])


def create_session(path: str | Path, options: RuntimeOptions):
    """One InferenceSession; created once per run and reused for every image."""
    ort = _onnxruntime()
    session_options = ort.SessionOptions()
    session_options.log_severity_level = 3  # keep ONNX Runtime's own warnings off the user's terminal
    session_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if options.threads:
        session_options.intra_op_num_threads = options.threads
        session_options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), session_options, providers=options.providers)


class InferenceModel:
    """One loaded model: ``model(array)`` -> its outputs in graph order."""

    def __init__(self, path: Path, variant: Variant, runtime: RuntimeOptions) -> None:
        self.path, self.variant = Path(path), variant
        if variant.engine == "onnxruntime":
            self._session = create_session(path, runtime)
            self._input = self._session.get_inputs()[0].name
        elif variant.engine == "openvino":
            import openvino as ov

            config = {"INFERENCE_PRECISION_HINT": variant.precision_hint, "PERFORMANCE_HINT": "LATENCY"}
            if runtime.threads:
                config["INFERENCE_NUM_THREADS"] = runtime.threads
            core = ov.Core()
            model = core.read_model(str(path))
            shape = model.inputs[0].get_partial_shape()
            fp32_file = variant.file_precision == "fp32"
            if fp32_file and shape.is_dynamic and shape.rank.get_length() == 4 and shape[0].is_dynamic:
                # the gate runs one image at a time: a static batch of 1 lets OpenVINO plan every layer ahead
                # (measured here: 29 -> 24 ms for the ensemble at 224 px in bf16). Not for the int8 QDQ file:
                # OpenVINO 2026.4 crashed (segmentation fault) compiling the reshaped int8 ensemble.
                model.reshape([1, *[d.get_length() for d in list(shape)[1:]]])
            self._compiled = core.compile_model(model, "CPU", config)
        else:
            raise ValueError(f"unknown inference engine '{variant.engine}'")

    def __call__(self, array: np.ndarray) -> list[np.ndarray]:
        if self.variant.engine == "onnxruntime":
            return self._session.run(None, {self._input: array})
        # a fresh infer request per call: requests are not shareable across threads, compiled models are
        results = self._compiled.create_infer_request().infer({0: array})
        return [np.asarray(results[output]) for output in self._compiled.outputs]


def load_model(path: str | Path, variant: str | Variant, runtime: RuntimeOptions) -> InferenceModel:
    return InferenceModel(Path(path), VARIANTS[variant] if isinstance(variant, str) else variant, runtime)
