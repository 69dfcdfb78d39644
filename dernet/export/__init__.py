"""ONNX export of the DERNet ensemble (one graph, `python -m dernet.export`) and faster runtime variants of both
exported models (`python -m dernet.export.quantize`); the detector's exporter is `python -m yolo_spine.export`, and
`make export-onnx` runs them all. Each writes export/manifest.json through dernet.deploy, which owns it.
"""
