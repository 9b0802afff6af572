"""The build task's database user: created if missing and given what the build needs in the warehouse, no more.

Run by infra/deploy.sh after every deploy (it is idempotent); by hand: ``python3 infra/warehouse_user.py --stack
online-retail-pipeline``. Needs the AWS CLI v2 and python3, nothing else (a deployer's machine, not the venv).

The build task logs in with its role (dbt-redshift's ``iam_role`` method): Redshift Serverless's GetCredentials
maps the role to the database user ``IAMR:<role name>``. Such a user is created with PUBLIC's rights only, which
cannot build anything, so this script, as the namespace's admin, makes sure that it

* exists (``create user ... password disable``: it never logs in with a password);
* may create schemas in the database: the build creates ``staging``, ``gold_audit``, ``gold`` and the tests'
  audit schema (``BUILD_SCHEMAS``) when they are missing, and so owns them and everything it builds in them;
* may use the COPY role, for COPY only (``grant assumerole``; the load's COPYs name it), while other users need
  a grant of their own to use the namespace's roles (``revoke assumerole on all from public``: by default
  Redshift lets every user name every role, for anything);
* owns those schemas, and every table and view in them, where they already exist under another owner: a
  warehouse built by an earlier version of the stack, which logged in as the admin. Only an owner may drop,
  rename or replace a relation, and dbt does all three.

Nothing else: no other schema, no superuser, no user management. The statements run through the Redshift Data
API with the admin secret's ARN (the deployer's credentials read it; this script never sees a password, and no
statement holds one).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

# Every schema the build creates or writes (macros/, dbt_project.yml, warehouse/project.py AUDIT_SCHEMA);
# tests/integration/test_redshift_on_postgres.py checks the rendered Redshift plan against this list.
BUILD_SCHEMAS = ("staging", "gold_audit", "gold", "dbt_test__audit")
# The stack outputs this script reads (infra/template.yaml, Outputs).
OUTPUTS = (
    "RedshiftWorkgroupName",
    "RedshiftDatabase",
    "RedshiftSecretArn",
    "RedshiftCopyRoleArn",
    "BuildTaskRoleName",
)
POLL_SECONDS = 1.0
TIMEOUT_SECONDS = 300.0

Query = Callable[[str], list[list[str]]]


class WarehouseUserError(Exception):
    """A one-line reason the user could not be set up."""


def database_user(role_name: str) -> str:
    """The database user GetCredentials maps an IAM role to."""
    return f"IAMR:{role_name}"


def ident(name: str) -> str:
    """``name`` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """``text`` as an SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def user_exists_query(user: str) -> str:
    return f"select usename from pg_user where usename = {literal(user)}"


def owned_by_others_query(user: str, schemas: Sequence[str] = BUILD_SCHEMAS) -> str:
    """The build's schemas, tables and views that exist under another owner: (kind, schema, name) rows."""
    names = ", ".join(literal(s) for s in schemas)
    return (
        f"select 'schema', nspname, '' from pg_namespace where nspname in ({names})"
        f" and pg_get_userbyid(nspowner) <> {literal(user)}"
        f" union all select 'table', schemaname, tablename from pg_tables where schemaname in ({names})"
        f" and tableowner <> {literal(user)}"
        f" union all select 'view', schemaname, viewname from pg_views where schemaname in ({names})"
        f" and viewowner <> {literal(user)}"
        " order by 1, 2, 3"
    )


def create_user_statement(user: str) -> str:
    return f"create user {ident(user)} password disable"


def ownership_statements(user: str, owned_by_others: Sequence[Sequence[str]]) -> list[str]:
    """Hand ``user`` the build's schemas, tables and views that another user owns (owned_by_others_query's rows)."""
    statements = []
    # Schemas first: a relation's new owner needs no grant on a schema it owns.
    for kind, schema, name in sorted(owned_by_others, key=lambda row: row[0] != "schema"):
        if kind == "schema":
            statements.append(f"alter schema {ident(schema)} owner to {ident(user)}")
        elif kind in ("table", "view"):
            statements.append(f"alter table {ident(schema)}.{ident(name)} owner to {ident(user)}")
        else:
            raise WarehouseUserError(f"unexpected catalogue row {kind!r} for {schema}.{name}")
    return statements


# Until a superuser revokes it, every user may name any IAM role of the namespace in COPY, UNLOAD, CREATE MODEL
# and external functions (Redshift's default for ASSUMEROLE): a grant FOR COPY restricts nothing before this.
# Superusers are not affected; other users of this namespace then need a grant of their own to use its roles.
REVOKE_ASSUMEROLE_FROM_PUBLIC = "revoke assumerole on all from public for all"
# The Data API takes at most 40 statements in one batch-execute-statement.
MAX_BATCH = 40


def plan(query: Query, role_name: str, database: str, copy_role_arn: str) -> list[list[str]]:
    """What makes the build's user what it must be, from the catalogue as ``query`` reads it: steps, in order,
    each one transaction. A user name in double quotes keeps its case in Redshift (whatever
    enable_case_sensitive_identifier says), so "IAMR:..." is the user GetCredentials logs in as.

    1. the user if missing, CREATE on the database, and the hand-over of what another user owns, in batches of at
       most MAX_BATCH statements (the script is idempotent: a run stopped between two is finished by the next);
    2. ASSUMEROLE taken from PUBLIC, then given to the user on the COPY role for COPY only, each on its own: a
       GRANT on an IAM role is not one to run inside a transaction block.
    """
    user = database_user(role_name)
    create = [] if query(user_exists_query(user)) else [create_user_statement(user)]
    first = [*create, f"grant create on database {ident(database)} to {ident(user)}"]
    handover = ownership_statements(user, query(owned_by_others_query(user)))
    room = MAX_BATCH - len(first)
    batches = [first + handover[:room]]
    batches += [handover[i : i + MAX_BATCH] for i in range(room, len(handover), MAX_BATCH)]
    return [
        *batches,
        [REVOKE_ASSUMEROLE_FROM_PUBLIC],
        [f"grant assumerole on {literal(copy_role_arn)} to {ident(user)} for copy"],
    ]


# --- the Redshift Data API through the AWS CLI ------------------------------------------------------------------


def aws_json(aws: str, *args: str) -> Any:
    """``aws <args> --output json``, its answer parsed; a failure is one line naming the command."""
    done = subprocess.run([aws, *args, "--output", "json"], capture_output=True, text=True)
    what = f"aws {args[0]} {args[1]}"
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        raise WarehouseUserError(f"{what} failed: {lines[-1] if lines else f'exit {done.returncode}'}")
    try:
        return json.loads(done.stdout or "{}")
    except json.JSONDecodeError:
        raise WarehouseUserError(f"{what} answered something other than JSON") from None


class DataApi:
    """Statements run as the admin (its secret's ARN) on the workgroup, each waited for."""

    def __init__(self, aws: str, workgroup: str, database: str, secret_arn: str) -> None:
        self.aws = aws
        self.target = ["--workgroup-name", workgroup, "--database", database, "--secret-arn", secret_arn]

    def _cli(self, *args: str) -> dict:
        return aws_json(self.aws, "redshift-data", *args)

    def _wait(self, statement_id: str, what: str) -> dict:
        deadline = time.monotonic() + TIMEOUT_SECONDS
        while True:
            described = self._cli("describe-statement", "--id", statement_id)
            status = described.get("Status")
            if status == "FINISHED":
                return described
            if status in ("FAILED", "ABORTED"):
                raise WarehouseUserError(
                    f"{what} {status.lower()}: {described.get('Error', 'no error given')}"
                )
            if time.monotonic() > deadline:
                raise WarehouseUserError(f"{what} still {status} after {TIMEOUT_SECONDS:.0f} s")
            time.sleep(POLL_SECONDS)

    def query(self, sql: str) -> list[list[str]]:
        statement = self._id(self._cli("execute-statement", *self.target, "--sql", sql))
        if not self._wait(statement, "a catalogue query").get("HasResultSet"):
            return []
        result = self._cli("get-statement-result", "--id", statement)
        return [[next(iter(field.values())) for field in record] for record in result.get("Records", [])]

    def run(self, statements: Sequence[str]) -> None:
        """One step: a single statement with execute-statement, more in one transaction (batch-execute-statement)."""
        if len(statements) == 1:
            [sql] = statements
            started = self._cli("execute-statement", *self.target, "--sql", sql)
            self._wait(self._id(started), sql.split(" on ")[0])
        else:
            started = self._cli("batch-execute-statement", *self.target, "--sqls", *statements)
            self._wait(self._id(started), "the grants")

    @staticmethod
    def _id(answer: dict) -> str:
        if not isinstance(answer.get("Id"), str):
            raise WarehouseUserError("the Data API started no statement: its answer has no Id")
        return answer["Id"]


def stack_outputs(aws: str, stack: str) -> dict[str, str]:
    described = aws_json(
        aws, "cloudformation", "describe-stacks", "--stack-name", stack, "--query", "Stacks[0].Outputs"
    )
    try:
        outputs = {o["OutputKey"]: o["OutputValue"] for o in described or []}
    except (KeyError, TypeError):
        raise WarehouseUserError(f"stack {stack}'s outputs are not what describe-stacks returns") from None
    missing = [name for name in OUTPUTS if not outputs.get(name)]
    if missing:
        raise WarehouseUserError(
            f"stack {stack} has no output {', '.join(missing)}: deploy infra/template.yaml first"
        )
    return outputs


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True, help="the CloudFormation stack (STACK_NAME)")
    parser.add_argument("--aws", default="aws", help="the AWS CLI to run (default: aws on PATH)")
    args = parser.parse_args(argv)
    try:
        outputs = stack_outputs(args.aws, args.stack)
        api = DataApi(
            args.aws,
            outputs["RedshiftWorkgroupName"],
            outputs["RedshiftDatabase"],
            outputs["RedshiftSecretArn"],
        )
        steps = plan(
            api.query,
            outputs["BuildTaskRoleName"],
            outputs["RedshiftDatabase"],
            outputs["RedshiftCopyRoleArn"],
        )
        for step in steps:
            api.run(step)
    except WarehouseUserError as error:
        print(f"deploy: the build's database user: {error}", file=sys.stderr)
        return 2
    statements = [s for step in steps for s in step]
    handed = sum(1 for s in statements if s.startswith("alter "))
    created = any(s.startswith("create user ") for s in statements)
    user = database_user(outputs["BuildTaskRoleName"])
    print(
        f"deploy: database user {user} {'created' if created else 'present'}: may create schemas in "
        f"{outputs['RedshiftDatabase']} and COPY with the copy role; {handed} schema(s) and relation(s) handed over"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
