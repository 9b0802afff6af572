#!/usr/bin/env bash
# `make deploy`: deploy what `make package` built in dist/: push the task image (the wheel with its `task`
# extra, Dockerfile), upload the Glue job's script, zip and wheelhouse, then package and deploy the stack. Nothing here
# builds code: `make deploy` runs `make package` first, and this script stops if dist/ is missing.
#
# Needs: the AWS CLI v2 with credentials for the target account and region, Docker with a running daemon,
# git and python3. Required variables:
#   ARTIFACT_BUCKET  an existing S3 bucket in the target region, for the packaged template and the Glue code
#   VPC_ID           the VPC of the tasks and of Redshift Serverless
#   SUBNET_IDS       comma-separated private subnets in three Availability Zones, with a route to a NAT gateway
# Optional: STACK_NAME (online-retail-pipeline), RESOURCE_PREFIX (online-retail), ECR_REPOSITORY
# (online-retail-pipeline), IMAGE_TAG (a hash of what the image is built from), AWS_REGION, and three stack
# settings that an unset variable leaves as the stack has them (the template's default on a first deploy):
# ALERT_EMAIL (none; set it empty to remove the subscription), GLUE_WORKERS (2), SCHEDULE_STATE (ENABLED or
# DISABLED; DISABLED on a first deploy).
# Before building anything it checks the network (below) and stops with one line saying what is missing.
# After the first deploy, follow docs/operations.md, "First deploy": the Kaggle secret, a first execution, then
# SCHEDULE_STATE=ENABLED make deploy.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "deploy: $*" >&2; exit 2; }
for tool in aws docker git python3; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is required (see docs/operations.md)"
done
DIST=${DIST:-dist}
[[ -f "$DIST/MANIFEST.json" ]] || die "no $DIST/MANIFEST.json: run \`make package\` first (make deploy does)"
GLUE_SCRIPT="$DIST/glue/retail_transform.py"
GLUE_LIBS="$DIST/glue/retail_transform_libs.zip"
for artifact in "$GLUE_SCRIPT" "$GLUE_LIBS"; do
    [[ -f "$artifact" ]] || die "$artifact is missing: run \`make package\`"
done
# The Glue job's wheelhouse: every wheel MANIFEST.json lists, present with its hash. Prints the first 16 hex of
# the requirements' hash (which keys the upload), then the wheels.
WHEELHOUSE=$(python3 - "$DIST" <<'PY'
import hashlib, json, sys
from pathlib import Path
dist = Path(sys.argv[1])
wheelhouse = json.loads((dist / "MANIFEST.json").read_text()).get("glue_wheelhouse") or {}
files = wheelhouse.get("files") or []
if not files or not wheelhouse.get("requirements_sha256"):
    sys.exit(1)
print(wheelhouse["requirements_sha256"][:16])
for entry in files:
    path = dist / entry["file"]
    if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != entry["sha256"]:
        sys.exit(1)
    print(entry["file"])
PY
) || die "the Glue wheelhouse in $DIST is missing or does not match MANIFEST.json: run \`make package\`"
WHEELHOUSE_SHA=$(head -n 1 <<< "$WHEELHOUSE")
WHEELS=$(tail -n +2 <<< "$WHEELHOUSE")
: "${ARTIFACT_BUCKET:?set ARTIFACT_BUCKET to an S3 bucket for the packaged template and Glue code}"
: "${VPC_ID:?set VPC_ID}"
: "${SUBNET_IDS:?set SUBNET_IDS to three private subnets, comma-separated}"
case "${SCHEDULE_STATE:-}" in
    ""|ENABLED|DISABLED) ;;
    *) die "SCHEDULE_STATE=$SCHEDULE_STATE: use ENABLED or DISABLED" ;;
esac

STACK_NAME=${STACK_NAME:-online-retail-pipeline}
RESOURCE_PREFIX=${RESOURCE_PREFIX:-online-retail}
ECR_REPOSITORY=${ECR_REPOSITORY:-online-retail-pipeline}
REGION=${AWS_REGION:-$(aws configure get region || true)}
[[ -n "$REGION" ]] || die "set AWS_REGION"
export AWS_REGION=$REGION
ACCOUNT=$(aws sts get-caller-identity --query Account --output text)
# The image is built from make package's wheel, the lock and the Dockerfile, and tagged by their hashes: the
# repository's tags are immutable, so a tag must always name the same content (a commit would not: dist/ may come
# from a dirty tree, and a later deploy of that commit would reuse whatever was pushed under it first).
IMAGE_TAG=${IMAGE_TAG:-$(python3 - "$DIST/MANIFEST.json" <<'PY'
import hashlib, json, sys
wheel = json.load(open(sys.argv[1]))["wheel"]["sha256"]
files = [hashlib.sha256(open(name, "rb").read()).hexdigest() for name in ("Dockerfile", "constraints.txt")]
print(hashlib.sha256("".join([wheel, *files]).encode()).hexdigest()[:16])
PY
)}
REGISTRY="$ACCOUNT.dkr.ecr.$REGION.amazonaws.com"
IMAGE="$REGISTRY/$ECR_REPOSITORY:$IMAGE_TAG"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

echo "deploy: stack $STACK_NAME in $ACCOUNT/$REGION, image $IMAGE"
# 0. The network, before anything is built or pushed. The tasks run in SUBNET_IDS without a public IP: they reach
# ECR (the image), CloudWatch Logs (awslogs), Secrets Manager, CloudWatch metrics, Redshift Serverless's API (the
# build's login) and S3 through a NAT gateway or through VPC endpoints, and the ingest reaches Kaggle only through a NAT. The Glue job runs outside the VPC (no
# connection) and the tasks take their role's credentials from ECS, not STS: neither needs an endpoint. S3 also
# serves Redshift's COPY, which enhanced VPC routing sends through the VPC: the stack adds a free S3 gateway
# endpoint to the subnets' route tables unless one not its own is there already. Prints those route tables.
# (The aws found here is passed on: a python3 shim, pyenv's say, may put another one first on PATH.)
S3_ROUTE_TABLES=$(python3 - "$(command -v aws)" "$VPC_ID" "$SUBNET_IDS" "$STACK_NAME" "$REGION" <<'PY'
import json, subprocess, sys

cli, vpc, subnet_ids, stack, region = sys.argv[1], sys.argv[2], sys.argv[3].split(","), sys.argv[4], sys.argv[5]
# What the tasks call when there is no NAT: the image (ecr.api, ecr.dkr; its layers come from S3), their logs,
# the Kaggle secret, their metrics, and the build's Redshift login (GetCredentials).
NEEDED = {
    "ecr.api": "pull the image",
    "ecr.dkr": "pull the image",
    "logs": "write their logs",
    "secretsmanager": "read the secrets",
    "monitoring": "send their metrics",
    "redshift-serverless": "log in to Redshift",
}


def aws(*args):
    done = subprocess.run([cli, "ec2", *args, "--output", "json"], capture_output=True, text=True)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        fail(f"aws ec2 {args[0]} failed: {lines[-1] if lines else 'exit ' + str(done.returncode)}")
    return json.loads(done.stdout or "{}")


def fail(message):
    print(f"deploy: {message}", file=sys.stderr)
    sys.exit(2)


subnets = {s["SubnetId"]: s for s in aws("describe-subnets", "--subnet-ids", *subnet_ids).get("Subnets", [])}
missing = [s for s in subnet_ids if s not in subnets]
if missing:
    fail(f"no subnet {', '.join(missing)} in {region}: check SUBNET_IDS")
elsewhere = [s for s in subnet_ids if subnets[s]["VpcId"] != vpc]
if elsewhere:
    fail(f"{', '.join(elsewhere)} not in {vpc}: SUBNET_IDS must be subnets of VPC_ID")
zones = sorted({subnets[s]["AvailabilityZone"] for s in subnet_ids})
if len(zones) < 3:
    fail(f"SUBNET_IDS span {len(zones)} Availability Zone(s) ({', '.join(zones)}): Redshift Serverless needs three")

tables = aws("describe-route-tables", "--filters", f"Name=vpc-id,Values={vpc}").get("RouteTables", [])
main = next((t for t in tables if any(a.get("Main") for a in t.get("Associations", []))), None)
table_of = {}
for subnet in subnet_ids:
    own = [t for t in tables if any(a.get("SubnetId") == subnet for a in t.get("Associations", []))]
    table = own[0] if own else main
    if table is None:
        fail(f"{subnet} has no route table (and {vpc} no main one)")
    table_of[subnet] = table

endpoints = [
    e for e in aws("describe-vpc-endpoints", "--filters", f"Name=vpc-id,Values={vpc}").get("VpcEndpoints", [])
    if e.get("State", "").lower() in ("available", "pending")
]
prefix = f"com.amazonaws.{region}."
interface = {
    e["ServiceName"].removeprefix(prefix)
    for e in endpoints
    if e.get("VpcEndpointType") == "Interface" and e.get("PrivateDnsEnabled")
}


def ours(endpoint):  # the one this stack made: it stays while the stack is given the route tables
    tags = endpoint.get("Tags", [])
    return any(t.get("Key") == "aws:cloudformation:stack-name" and t.get("Value") == stack for t in tags)


s3_served = {
    table
    for e in endpoints
    if e.get("VpcEndpointType") == "Gateway" and e["ServiceName"] == prefix + "s3" and not ours(e)
    for table in e.get("RouteTableIds", [])
}


def nat(table):
    return any(
        r.get("DestinationCidrBlock") == "0.0.0.0/0" and r.get("NatGatewayId") and r.get("State", "active") == "active"
        for r in table.get("Routes", [])
    )


without_nat = [s for s in subnet_ids if not nat(table_of[s])]
if without_nat:
    where = ", ".join(f"{s} ({table_of[s]['RouteTableId']})" for s in without_nat)
    absent = [name for name in NEEDED if name not in interface]
    if absent:
        fail(
            f"{where}: no route to a NAT gateway, and {vpc} has no interface endpoint (private DNS on) for "
            f"{', '.join(absent)}: the tasks could not {' or '.join(dict.fromkeys(NEEDED[a] for a in absent))}; "
            "add a NAT gateway route to the subnets' route tables or those endpoints (docs/operations.md, First deploy)"
        )
    print(
        f"deploy: warning: {where}: no route to a NAT gateway; AWS is reached through VPC endpoints, but the "
        "ingest cannot reach Kaggle (only --source synthetic runs)",
        file=sys.stderr,
    )
print(",".join(sorted({table_of[s]["RouteTableId"] for s in subnet_ids} - s3_served)))
PY
) || exit 2
echo "deploy: network ok; S3 gateway endpoint from the stack for: ${S3_ROUTE_TABLES:-none (the VPC has one)}"

# 1. The task image. The repository lives outside the stack: the image must exist before the stack uses it.
if ! aws ecr describe-repositories --repository-names "$ECR_REPOSITORY" >/dev/null 2>&1; then
    aws ecr create-repository --repository-name "$ECR_REPOSITORY" \
        --image-tag-mutability IMMUTABLE \
        --image-scanning-configuration scanOnPush=true \
        --encryption-configuration encryptionType=KMS >/dev/null
fi
aws ecr get-login-password | docker login --username AWS --password-stdin "$REGISTRY"
if ! aws ecr describe-images --repository-name "$ECR_REPOSITORY" --image-ids "imageTag=$IMAGE_TAG" >/dev/null 2>&1; then
    docker build --platform linux/amd64 -t "$IMAGE" .
    docker push "$IMAGE"
fi

# 2. The Glue code, content-addressed by the hashes `make package` recorded: a changed job gets a new key.
CODE_SHA=$(python3 -c 'import json, sys; m = json.load(open(sys.argv[1])); print((m["glue_script"]["sha256"] + m["glue_libs"]["sha256"])[:16])' "$DIST/MANIFEST.json")
GLUE_PREFIX="$STACK_NAME/glue/$CODE_SHA"
aws s3 cp --only-show-errors "$GLUE_SCRIPT" "s3://$ARTIFACT_BUCKET/$GLUE_PREFIX/retail_transform.py"
aws s3 cp --only-show-errors "$GLUE_LIBS" "s3://$ARTIFACT_BUCKET/$GLUE_PREFIX/retail_transform_libs.zip"
# The job's Python dependencies: the wheelhouse's wheels, checked against MANIFEST.json's hashes, under a prefix
# keyed by its requirements.txt. Their names must stay as built (pip reads the tags from them).
WHEELHOUSE_PREFIX="$STACK_NAME/glue/wheelhouse/$WHEELHOUSE_SHA"
GLUE_MODULES=""
while IFS= read -r wheel; do
    [[ -n "$wheel" ]] || continue
    aws s3 cp --only-show-errors "$DIST/$wheel" "s3://$ARTIFACT_BUCKET/$WHEELHOUSE_PREFIX/${wheel##*/}"
    GLUE_MODULES+="${GLUE_MODULES:+,}s3://$ARTIFACT_BUCKET/$WHEELHOUSE_PREFIX/${wheel##*/}"
done <<< "$WHEELS"

# 3. Package (uploads the state machine definition, DefinitionUri) and deploy.
aws cloudformation package \
    --template-file infra/template.yaml \
    --s3-bucket "$ARTIFACT_BUCKET" \
    --s3-prefix "$STACK_NAME/cloudformation" \
    --output-template-file "$WORK/packaged.yaml"
# The packaged template is over the 51,200 bytes CloudFormation takes inline: deploy uploads it to the bucket.
aws cloudformation deploy \
    --template-file "$WORK/packaged.yaml" \
    --s3-bucket "$ARTIFACT_BUCKET" \
    --s3-prefix "$STACK_NAME/cloudformation" \
    --stack-name "$STACK_NAME" \
    --capabilities CAPABILITY_IAM CAPABILITY_NAMED_IAM CAPABILITY_AUTO_EXPAND \
    --no-fail-on-empty-changeset \
    --parameter-overrides \
        "ResourcePrefix=$RESOURCE_PREFIX" \
        "VpcId=$VPC_ID" \
        "PrivateSubnetIds=$SUBNET_IDS" \
        "ImageUri=$IMAGE" \
        "ArtifactBucket=$ARTIFACT_BUCKET" \
        "GlueScriptKey=$GLUE_PREFIX/retail_transform.py" \
        "GlueExtraPyFilesKey=$GLUE_PREFIX/retail_transform_libs.zip" \
        "GlueWheelhouseKeyPrefix=$WHEELHOUSE_PREFIX" \
        "GluePythonModules=$GLUE_MODULES" \
        "S3GatewayRouteTableIds=$S3_ROUTE_TABLES" \
        ${GLUE_WORKERS:+"GlueWorkers=$GLUE_WORKERS"} \
        ${ALERT_EMAIL+"AlertEmail=$ALERT_EMAIL"} \
        ${SCHEDULE_STATE:+"ScheduleState=$SCHEDULE_STATE"}
# 4. The build task's database user (IAMR:<its role's name>): created if missing, allowed to create its schemas
# and to COPY with the copy role, and handed the schemas an earlier stack's builds made as the admin. Run as the
# admin through the Redshift Data API with the admin secret's ARN; no password passes through here.
python3 infra/warehouse_user.py --stack "$STACK_NAME" --aws "$(command -v aws)" || exit 2
aws cloudformation describe-stacks --stack-name "$STACK_NAME" --query "Stacks[0].Outputs" --output table
