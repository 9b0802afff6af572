"""The shared core every stage builds on: settings, errors, the lake's layout and storage, the TSV dialect, the
cleaning contract's names and the stage metrics.

It imports nothing else of this project (`make test` checks it with import-linter, contracts in pyproject.toml),
so each deployable can carry it: the Glue job's zip, the task image and the local CLI.
"""
