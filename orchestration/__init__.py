"""Orchestration: the Step Functions definition, its local runner, and the task image's entrypoint."""
