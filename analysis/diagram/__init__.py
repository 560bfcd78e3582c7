"""Architecture diagrams (Graphviz) of an HRNet config at every level (stage, module, block), optionally
annotated with each part's parameters and GFLOPs.

Public API: ``build_diagram``, ``render``, ``render_bytes``, ``dot_program``, ``module_names``, ``count_classes``
(``build``); ``cost_table`` (``costs``, the annotation, read from ``analysis.complexity``).
"""

from analysis.diagram.build import build_diagram, count_classes, dot_program, module_names, render, render_bytes

__all__ = ["build_diagram", "count_classes", "dot_program", "module_names", "render", "render_bytes"]
