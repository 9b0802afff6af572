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
# Exact versions from the project's lock.
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-compile -c constraints.txt "$(ls online_retail_pipeline-*.whl)[task]" \
    && find /opt/venv -name "__pycache__" -type d -prune -exec rm -rf {} +

FROM python:3.11-slim-bookworm
# The root filesystem is read-only on ECS (ReadonlyRootFilesystem); everything written goes under /tmp, a
# task volume: dbt's target and logs, HOME (Kaggle's client), the temp files of the lake writer.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    DBT_TARGET_PATH=/tmp/dbt/target \
    DBT_LOG_PATH=/tmp/dbt/logs \
    RETAIL_DBT_TARGET=prod
RUN groupadd --system --gid 10001 pipeline \
    && useradd --system --uid 10001 --gid pipeline --home-dir /tmp --shell /usr/sbin/nologin pipeline
COPY --from=deps /opt/venv /opt/venv
WORKDIR /tmp
USER 10001:10001
ENTRYPOINT ["retail-pipeline-task"]
CMD ["--help"]
