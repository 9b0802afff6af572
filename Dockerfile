# syntax=docker/dockerfile:1
# The ECS Fargate task image: `ingest` (Kaggle -> raw-data/) and `build` (dbt on Redshift), run through
# orchestration/entrypoint.py, which reads the secrets, passes the state machine's dbt flags and ships the dbt
# artifacts to S3. The transform runs on Glue, so Spark, DuckDB and Great Expectations stay out of the image.
#   docker build -t online-retail-pipeline .
#   docker run --rm online-retail-pipeline ingest --source synthetic --scale 1   (needs RETAIL_LAKE and AWS access)
# checkov:skip=CKV_DOCKER_2: a batch task that runs one command and exits has nothing for a HEALTHCHECK to probe; ECS watches the exit code.
FROM python:3.11-slim-bookworm AS deps
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /build
COPY constraints.txt ./
# Exact versions from the project's lock; only what the container runs.
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-compile -c constraints.txt dbt-core dbt-redshift kaggle six boto3 rich \
    && find /opt/venv -name "__pycache__" -type d -prune -exec rm -rf {} +

FROM python:3.11-slim-bookworm
# The root filesystem is read-only on ECS (ReadonlyRootFilesystem); everything written goes under /tmp, a
# task volume: dbt's target and logs, HOME (Kaggle's client), the temp files of the lake writer.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    DBT_PROFILES_DIR=/app/profiles \
    DBT_TARGET_PATH=/tmp/dbt/target \
    DBT_LOG_PATH=/tmp/dbt/logs \
    RETAIL_DBT_TARGET=prod
RUN groupadd --system --gid 10001 pipeline \
    && useradd --system --uid 10001 --gid pipeline --home-dir /tmp --shell /usr/sbin/nologin pipeline
COPY --from=deps /opt/venv /opt/venv
WORKDIR /app
# The dbt project at /app (retail_pipeline.warehouse finds it beside the package) and the code that drives it.
COPY dbt_project.yml ./
COPY models ./models
COPY macros ./macros
COPY analyses ./analyses
COPY tests/dbt ./tests/dbt
COPY profiles.yml.example ./profiles/profiles.yml
COPY retail_pipeline ./retail_pipeline
COPY ingestion ./ingestion
COPY orchestration/__init__.py orchestration/entrypoint.py ./orchestration/
USER 10001:10001
ENTRYPOINT ["python", "-m", "orchestration.entrypoint"]
CMD ["--help"]
