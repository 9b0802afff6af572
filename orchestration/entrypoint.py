"""The task image's entrypoint: ``entrypoint.py COMMAND [ARGS...]`` runs ``retail-pipeline COMMAND ARGS``.

Around the command it does three things the ECS tasks need:

1. Secrets. A variable already set wins; otherwise the secret named by ``KAGGLE_SECRET_ID`` (JSON
   ``{"username", "key"}``) fills ``KAGGLE_USERNAME``/``KAGGLE_KEY``, and the one named by
   ``REDSHIFT_SECRET_ID`` (JSON ``{"username", "password"}``, optionally ``host``, ``port``, ``dbname``)
   fills ``REDSHIFT_USER``/``REDSHIFT_PASSWORD`` (and ``REDSHIFT_HOST``/``PORT``/``DATABASE``), read from
   Secrets Manager at start. Secrets never appear in the task definition or the command line.
2. dbt flags from the state machine. ``build`` and ``run`` get ``--select`` from ``RETAIL_DBT_SELECT`` (when
   not empty) and ``--full-refresh`` when ``RETAIL_DBT_FULL_REFRESH`` is true, unless the arguments have
   them; ``build`` gets ``--docs`` (generate the docs site) when ``RETAIL_DBT_DOCS`` is true.
3. dbt artifacts. After ``build``/``run``, ``run_results.json``, ``manifest.json`` and the docs
   (``catalog.json``, ``index.html``) found in ``DBT_TARGET_PATH`` (default ``target``) are copied to
   ``{RETAIL_LAKE}/dbt-artifacts/online_retail/run_id=<RETAIL_RUN_ID>/``, failed builds included: their
   run_results.json says which test failed.

``RETAIL_DBT_SELECT`` must be a dbt selector (retail_core/selector.py), and ``RETAIL_RUN_ID``/``RETAIL_METRICS``
well formed: anything else exits 2 with one line before a secret is read or the command starts.

The exit code is the command's (3: a dbt test or a quality gate failed), or 4 when the command passed but
its artifacts could not be shipped, or 2/4 when a secret could not be read.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import Any

from retail_core import layout, metrics
from retail_core.config import Settings
from retail_core.errors import PipelineError
from retail_core.lake import open_lake
from retail_core.selector import parse_selector

log = logging.getLogger("entrypoint")

DBT_COMMANDS = ("build", "run")
ARTIFACTS = ("run_results.json", "manifest.json", "sources.json", "catalog.json", "index.html")

# secret id variable -> (secret JSON key -> environment variable); the first pair of each is required.
SECRETS: dict[str, dict[str, str]] = {
    "KAGGLE_SECRET_ID": {"username": "KAGGLE_USERNAME", "key": "KAGGLE_KEY"},
    "REDSHIFT_SECRET_ID": {
        "username": "REDSHIFT_USER",
        "password": "REDSHIFT_PASSWORD",
        "host": "REDSHIFT_HOST",
        "port": "REDSHIFT_PORT",
        "dbname": "REDSHIFT_DATABASE",
    },
}
REQUIRED_KEYS = {"KAGGLE_SECRET_ID": ("username", "key"), "REDSHIFT_SECRET_ID": ("username", "password")}

Runner = Callable[[Sequence[str], Mapping[str, str]], int]


class EntrypointError(Exception):
    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def main(
    argv: Sequence[str] | None = None,
    env: MutableMapping[str, str] | None = None,
    *,
    runner: Runner | None = None,
    secrets_client: Any = None,
) -> int:
    logging.basicConfig(level=logging.INFO, format="entrypoint: %(message)s", stream=sys.stderr)
    args = list(sys.argv[1:] if argv is None else argv)
    env = dict(os.environ) if env is None else env
    runner = runner or _run
    if not args or args[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if args else 2
    try:
        check_inputs(env)
    except PipelineError as exc:
        print(f"entrypoint: error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    try:
        load_secrets(env, secrets_client)
    except EntrypointError as exc:
        print(f"entrypoint: error: {exc}", file=sys.stderr)
        return exc.exit_code
    if not env.get("RETAIL_RUN_ID"):
        env["RETAIL_RUN_ID"] = metrics.new_run_id()
    command = args[0]
    if command in DBT_COMMANDS:
        args = with_dbt_flags(args, env)
    code = runner([sys.executable, "-m", "retail_pipeline.cli", *args], env)
    if command not in DBT_COMMANDS:
        return code
    try:
        shipped = ship_artifacts(env)
    except Exception as exc:
        print(f"entrypoint: error: could not ship the dbt artifacts: {exc}", file=sys.stderr)
        return code or 4
    log.info("shipped %d dbt artifact(s): %s", len(shipped), ", ".join(shipped) or "none found")
    return code


def check_inputs(env: Mapping[str, str]) -> None:
    """Refuse what the execution input put in the environment, before any work: ``RETAIL_DBT_SELECT`` must be
    a dbt selector (it becomes dbt's arguments), ``RETAIL_RUN_ID`` and ``RETAIL_METRICS`` well formed."""
    parse_selector(env.get("RETAIL_DBT_SELECT"))
    metrics.check_env(env)


def load_secrets(env: MutableMapping[str, str], client: Any = None) -> None:
    """Fill unset variables from the Secrets Manager secrets named in ``*_SECRET_ID``."""
    for id_var, mapping in SECRETS.items():
        secret_id = (env.get(id_var) or "").strip()
        if not secret_id:
            continue
        required = [mapping[k] for k in REQUIRED_KEYS[id_var]]
        if all(env.get(var) for var in required):
            log.info("%s: credentials already in the environment, not reading %s", id_var, secret_id)
            continue
        if client is None:
            import boto3

            client = boto3.client("secretsmanager", endpoint_url=env.get("AWS_ENDPOINT_URL") or None)
        value = _secret_json(client, secret_id)
        missing = [k for k in REQUIRED_KEYS[id_var] if not value.get(k)]
        if missing:
            raise EntrypointError(
                f"secret {secret_id} ({id_var}) has no {', '.join(missing)}: put_secret_value with the keys "
                f"{', '.join(REQUIRED_KEYS[id_var])}",
                2,
            )
        for key, var in mapping.items():
            if value.get(key) not in (None, "") and not env.get(var):
                env[var] = str(value[key])
        log.info("%s: read %s", id_var, secret_id)


def with_dbt_flags(args: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """``args`` plus ``--select``/``--full-refresh`` from the state machine's variables."""
    out = list(args)
    select = (env.get("RETAIL_DBT_SELECT") or "").strip()
    if select and not _has_flag(out, "--select", "-s"):
        out += ["--select", select]
    if _truthy(env.get("RETAIL_DBT_FULL_REFRESH")) and not _has_flag(out, "--full-refresh"):
        out.append("--full-refresh")
    if out[0] == "build" and _truthy(env.get("RETAIL_DBT_DOCS")) and not _has_flag(out, "--docs"):
        out.append("--docs")
    return out


def ship_artifacts(env: Mapping[str, str]) -> list[str]:
    """Copy the dbt artifacts that exist to the lake; return their names."""
    target = Path(env.get("DBT_TARGET_PATH") or "target")
    found = [name for name in ARTIFACTS if (target / name).is_file()]
    if not found:
        return []
    lake = open_lake(Settings.from_env(env))
    prefix = f"{layout.ARTIFACTS_ZONE}/{layout.DATASET}/run_id={env['RETAIL_RUN_ID']}"
    for name in found:
        lake.put_file(f"{prefix}/{name}", target / name)
    return found


def _secret_json(client: Any, secret_id: str) -> dict[str, Any]:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        response = client.get_secret_value(SecretId=secret_id)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "error")
        exit_code = 2 if code in ("ResourceNotFoundException", "AccessDeniedException") else 4
        raise EntrypointError(f"could not read secret {secret_id} ({code})", exit_code) from None
    except BotoCoreError as exc:
        raise EntrypointError(f"could not read secret {secret_id} ({exc})", 4) from None
    try:
        value = json.loads(response.get("SecretString") or "")
    except ValueError:
        raise EntrypointError(f"secret {secret_id} is not a JSON object", 2) from None
    if not isinstance(value, dict):
        raise EntrypointError(f"secret {secret_id} is not a JSON object", 2)
    return value


def _run(command: Sequence[str], env: Mapping[str, str]) -> int:
    """Run ``command``, passing on SIGTERM (ECS stopping the task) and SIGINT to it."""
    child = subprocess.Popen(list(command), env=dict(env))

    def forward(signum: int, _frame: Any) -> None:
        child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def _has_flag(args: Sequence[str], *names: str) -> bool:
    return any(a in names or any(a.startswith(f"{n}=") for n in names) for a in args)


if __name__ == "__main__":
    sys.exit(main())
