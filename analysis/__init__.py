"""Analyses on top of hrnet_core, one subpackage per capability:

- ``complexity``: parameters, GFLOPs, memory, latency (``analysis.complexity.analyze``)
- ``diagram``: architecture diagrams
- ``features``: feature maps, validation predictions
- ``imaging``: image loading and the top-down person crop
- ``ablation``: the fusion ablation (data, training, evaluation, launcher, reports)
- ``export``: ONNX / TorchScript / safetensors and onnxruntime
- ``cli``: the ``hrnet-explorer`` command line
- ``settings``: folders and ``HRNET_EXPLORER_*`` variables

Layers: ``app`` -> ``analysis`` -> ``hrnet_core`` (checked by import-linter, see pyproject.toml).
"""
