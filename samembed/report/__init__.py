"""The third stage: the runs store turned into CSV tables, PNG figures and a Markdown page."""

from .build import DEFAULT_REPORT_DIR, Report, write_report
from .tables import confidence_interval, per_class_table, runs_table, summary_table

__all__ = ["DEFAULT_REPORT_DIR", "Report", "confidence_interval", "per_class_table", "runs_table", "summary_table",
           "write_report"]
