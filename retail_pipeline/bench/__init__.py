"""``retail-pipeline bench``: the pipeline timed stage by stage on synthetic data, beside two reference
implementations of the same cleaning contract (DuckDB SQL and pandas) that must agree with Spark row for row.

* :mod:`retail_pipeline.bench.harness`: runs each stage as a subprocess in a fresh lake and warehouse, and
  samples the memory of the whole process tree (the Spark JVM included).
* :mod:`retail_pipeline.bench.references`: the cleaning contract in DuckDB SQL and in pandas.
* :mod:`retail_pipeline.bench.parity`: clean rows, Σ total_sales and a line_id digest, compared across engines.
* :mod:`retail_pipeline.bench.report`: the JSON, the Markdown table and the log-log chart.

The benchmark is not a test: the test suite only runs it at a tiny scale and checks that parity can fail.
"""
