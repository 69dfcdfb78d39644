"""The torch-free deploy core that export, the gate and every server share.

Owns export/manifest.json (its types, reader and writer), the runtime variants and their engines (ONNX Runtime,
OpenVINO), the detector's output decoding and NMS, the rejection rules, the :class:`Screener` (one input in, one
screening result out) and the report and overlay written for each input. Imports only numpy, OpenCV, pydicom,
Pillow and ONNX Runtime (OpenVINO when a variant asks for it): what `pip install 'spine-cad[cpu]'` brings.
"""

from .engines import RuntimeOptions
from .manifest import MANIFEST_NAME, Manifest, ManifestError, load_manifest, sha256_of
from .screening import FUSION_MIN_CONFIDENCE, MODES, Finding, Screener, Screening

__all__ = [
    "FUSION_MIN_CONFIDENCE",
    "MANIFEST_NAME",
    "MODES",
    "Finding",
    "Manifest",
    "ManifestError",
    "RuntimeOptions",
    "Screener",
    "Screening",
    "load_manifest",
    "sha256_of",
]
