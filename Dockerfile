# syntax=docker/dockerfile:1
# The ECS Fargate task image: `ingest` (Kaggle -> raw-data/) and `build` (dbt on Redshift), run through the
# wheel's `retail-pipeline-task` entrypoint (orchestration/entrypoint.py), which reads the secrets, passes the
# state machine's dbt flags and ships the dbt artifacts to S3. Built from `make package`'s wheel and nothing
# else: its `task` extra names exactly what the task runs (no Spark, DuckDB or Great Expectations; the transform
# runs on Glue), and the wheel carries the dbt project and its profile.
#   make package && docker build -t online-retail-pipeline .
#   docker run --rm online-retail-pipeline ingest --source synthetic --scale 1   (needs RETAIL_LAKE and AWS access)
# checkov:skip=CKV_DOCKER_2: a batch task that runs one command and exits has nothing for a HEALTHCHECK to probe; ECS watches the exit code.
FROM python:3.11-slim-bookworm AS deps
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /build
COPY constraints.txt ./
COPY dist/online_retail_pipeline-*.whl ./
# Exact versions from the project's lock, compiled to bytecode here (pip's default): the task's root filesystem is
# read-only, so a task could never cache what it compiles, and every start would compile dbt and boto3 again.
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install -c constraints.txt "$(ls online_retail_pipeline-*.whl)[task]"

FROM python:3.11-slim-bookworm
# The root filesystem is read-only on ECS (ReadonlyRootFilesystem): every path the task writes is under /tmp, the
# task's scratch volume (the task definitions mount it at /tmp): the temp files of the lake writer and of the
# Kaggle download (TMPDIR), HOME (the Kaggle client's and dbt's own files), dbt's target and logs. ECS creates a
# bind mount owned by root, mode 0755, unless the image declares a VOLUME at that path: then it copies the image's
# folder into the volume, with its owner and permissions. So /tmp and the dbt folders are made the task user's
# before the VOLUME line (a RUN after it could not change them), and the uid is the one USER names.
# tests/integration/test_template_rules.py checks that every path below is inside a VOLUME the task mounts.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TMPDIR=/tmp \
    HOME=/tmp \
    DBT_TARGET_PATH=/tmp/dbt/target \
    DBT_LOG_PATH=/tmp/dbt/logs \
    RETAIL_DBT_TARGET=prod
RUN groupadd --system --gid 10001 pipeline \
    && useradd --system --uid 10001 --gid pipeline --home-dir /tmp --shell /usr/sbin/nologin pipeline \
    && install -d -o 10001 -g 10001 -m 0755 /tmp/dbt /tmp/dbt/target /tmp/dbt/logs \
    && chown 10001:10001 /tmp \
    && chmod 1777 /tmp
COPY --from=deps /opt/venv /opt/venv
VOLUME ["/tmp"]
WORKDIR /tmp
USER 10001:10001
ENTRYPOINT ["retail-pipeline-task"]
CMD ["--help"]
