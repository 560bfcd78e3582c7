"""Export a model to ONNX / TorchScript / safetensors (``formats``) and run an exported ONNX model with
onnxruntime (``ort_engine``).

Public API: ``export``, ``FORMATS``, ``OPSET``, ``OrtFunction``, ``check_engine``.
"""

from analysis.export.formats import FORMATS, OPSET, export
from analysis.export.ort_engine import EngineError, OrtFunction, check_engine

__all__ = ["FORMATS", "OPSET", "EngineError", "OrtFunction", "check_engine", "export"]
