"""online-retail-pipeline: the command-line shell and what every stage shares (configuration, lake layout, TSV dialect)."""

__version__ = "0.1.0"
