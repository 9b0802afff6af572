"""The warehouse stage: the dbt project (staging and gold) driven from Python, on DuckDB locally and Redshift
in production.

* :mod:`warehouse.project`: where the dbt project is (the repository root, or the copy inside an installed
  wheel) and how dbt is invoked.
* :mod:`warehouse.build`: ``dbt build`` as a stage: its result, its failures as one-line errors, its figures.
* :mod:`warehouse.redshift_plan`: the SQL dbt would send to Redshift, rendered offline for review.

It builds on ``retail_core`` only; the CLI and the task entrypoint drive it.
"""
