"""ONNX export of the DERNet ensemble (one graph) and export/manifest.json, which the gate reads.

`python -m dernet.export` writes the classifier; `python -m yolo_spine.export` the detector; `make export-onnx`
runs both. Importing this package does not import torch (the gate reads the manifest through it).
"""

from .manifest import MANIFEST_NAME, Manifest, ManifestError, load_manifest, sha256_of

__all__ = ["MANIFEST_NAME", "Manifest", "ManifestError", "load_manifest", "sha256_of"]
