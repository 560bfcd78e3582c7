"""The fusion ablation (Sun et al. 2019, section 4.4): built-in and COCO keypoint data, training,
evaluation, run folders and reports.

Light entry points are re-exported here; the heavy ones (training) are imported on use.
"""

from analysis.ablation.coco_data import DatasetError
from analysis.ablation.progress import list_runs, read_progress
from analysis.ablation.recipes import RecipeError, load_recipe
from analysis.ablation.report import ReportPaths, load_summary, write_report

__all__ = [
    "DatasetError",
    "RecipeError",
    "ReportPaths",
    "list_runs",
    "load_recipe",
    "load_summary",
    "read_progress",
    "write_report",
]
