#!/usr/bin/env bash
# `make deploy`: deploy what `make package` built in dist/: push the task image (the wheel with its `task`
# extra, Dockerfile), upload the Glue job's script and zip, then package and deploy the stack. Nothing here
# builds code: `make deploy` runs `make package` first, and this script stops if dist/ is missing.
#
# Needs: the AWS CLI v2 with credentials for the target account and region, Docker with a running daemon,
# git and python3. Required variables:
#   ARTIFACT_BUCKET  an existing S3 bucket in the target region, for the packaged template and the Glue code
#   VPC_ID           the VPC of the tasks and of Redshift Serverless
#   SUBNET_IDS       comma-separated private subnets in three Availability Zones, with a NAT gateway
# Optional: STACK_NAME (online-retail-pipeline), RESOURCE_PREFIX (online-retail), ECR_REPOSITORY
# (online-retail-pipeline), IMAGE_TAG (the commit), ALERT_EMAIL, GLUE_WORKERS (2), AWS_REGION.
# After the first deploy, put the Kaggle credentials in the secret the stack prints (docs/operations.md).
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
: "${ARTIFACT_BUCKET:?set ARTIFACT_BUCKET to an S3 bucket for the packaged template and Glue code}"
: "${VPC_ID:?set VPC_ID}"
: "${SUBNET_IDS:?set SUBNET_IDS to three private subnets, comma-separated}"

STACK_NAME=${STACK_NAME:-online-retail-pipeline}
RESOURCE_PREFIX=${RESOURCE_PREFIX:-online-retail}
ECR_REPOSITORY=${ECR_REPOSITORY:-online-retail-pipeline}
GLUE_WORKERS=${GLUE_WORKERS:-2}
REGION=${AWS_REGION:-$(aws configure get region || true)}
[[ -n "$REGION" ]] || die "set AWS_REGION"
export AWS_REGION=$REGION
ACCOUNT=$(aws sts get-caller-identity --query Account --output text)
IMAGE_TAG=${IMAGE_TAG:-$(git rev-parse --short=12 HEAD)}
REGISTRY="$ACCOUNT.dkr.ecr.$REGION.amazonaws.com"
IMAGE="$REGISTRY/$ECR_REPOSITORY:$IMAGE_TAG"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

echo "deploy: stack $STACK_NAME in $ACCOUNT/$REGION, image $IMAGE"

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

# 3. Package (uploads the state machine definition, DefinitionUri) and deploy.
aws cloudformation package \
    --template-file infra/template.yaml \
    --s3-bucket "$ARTIFACT_BUCKET" \
    --s3-prefix "$STACK_NAME/cloudformation" \
    --output-template-file "$WORK/packaged.yaml"
aws cloudformation deploy \
    --template-file "$WORK/packaged.yaml" \
    --stack-name "$STACK_NAME" \
    --capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND \
    --no-fail-on-empty-changeset \
    --parameter-overrides \
        "ResourcePrefix=$RESOURCE_PREFIX" \
        "VpcId=$VPC_ID" \
        "PrivateSubnetIds=$SUBNET_IDS" \
        "ImageUri=$IMAGE" \
        "ArtifactBucket=$ARTIFACT_BUCKET" \
        "GlueScriptKey=$GLUE_PREFIX/retail_transform.py" \
        "GlueExtraPyFilesKey=$GLUE_PREFIX/retail_transform_libs.zip" \
        "GlueWorkers=$GLUE_WORKERS" \
        "AlertEmail=${ALERT_EMAIL:-}"
aws cloudformation describe-stacks --stack-name "$STACK_NAME" --query "Stacks[0].Outputs" --output table
