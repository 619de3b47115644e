"""The third stage: the runs store turned into CSV tables, PNG figures and a Markdown page."""

from .build import Report, write_report
from .tables import confidence_interval, per_class_table, runs_table, summary_table

__all__ = ["Report", "confidence_interval", "per_class_table", "runs_table", "summary_table",
           "write_report"]
