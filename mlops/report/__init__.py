"""report capability: three states (workspace, base, production) diffed into report.md, report.html, report.json."""

from mlops.files import parse_structured as parse_output
from mlops.markdown import md as escape_md
from mlops.report.build import build_report, compare, flatten_params, predictions_of
from mlops.report.charts import with_renderings
from mlops.report.model import Comparison, Meta, PipelineFailure, Report, State
from mlops.report.render import GITHUB_LIMIT, as_json, fit, html, markdown

__all__ = ["GITHUB_LIMIT", "Comparison", "Meta", "PipelineFailure", "Report", "State", "as_json", "build_report",
           "compare", "escape_md", "fit", "flatten_params", "html", "markdown", "parse_output", "predictions_of",
           "with_renderings"]
