{#-
    Redshift: load one ingest date of processed-data/ (and its run report) into the staging layer with COPY.

        dbt run-operation load_processed_data --target prod --args '{ingest_date: 2024-01-31}'

    The orchestration task runs this after the transform succeeded and before `dbt build` (docs/warehouse.md).
    It is idempotent: in one transaction it deletes what an earlier load of that date left and copies the date
    again, so running it twice loads nothing twice. The COPY options are the dialect's (macros/dialect.sql).
    The IAM role comes from the var `copy_iam_role`, else from REDSHIFT_COPY_IAM_ROLE.
-#}
{% macro load_processed_data(ingest_date, lake=none, iam_role=none) -%}
    {%- if target.type != 'redshift' -%}
        {{ exceptions.raise_compiler_error(
            "load_processed_data is the Redshift COPY; on " ~ target.type ~ " the source reads the lake directly") }}
    {%- endif -%}
    {%- do run_query(load_processed_data_sql(ingest_date, lake, iam_role)) -%}
    {{ log("loaded ingest_date=" ~ ingest_date ~ " into " ~ source('online_retail', 'transactions'), info=true) }}
{%- endmacro %}

{% macro load_processed_data_sql(ingest_date, lake=none, iam_role=none) -%}
    {%- set day = check_ingest_date(ingest_date) -%}
    {%- set lake = (lake or lake_root()).rstrip('/') -%}
    {%- if not lake.startswith('s3://') -%}
        {{ exceptions.raise_compiler_error(
            "COPY reads S3: RETAIL_LAKE must be s3://bucket/prefix, got '" ~ lake ~ "'") }}
    {%- endif -%}
    {%- set iam_role = iam_role or var('copy_iam_role', env_var('REDSHIFT_COPY_IAM_ROLE', '')) -%}
    {%- if not iam_role -%}
        {{ exceptions.raise_compiler_error(
            "COPY needs an IAM role: set REDSHIFT_COPY_IAM_ROLE or --vars '{copy_iam_role: arn:...}'") }}
    {%- endif -%}
    {%- set transactions = source('online_retail', 'transactions') -%}
    {%- set reports = source('online_retail', 'run_reports') -%}
    {%- set partition = 'ingest_date=' ~ day -%}

create schema if not exists {{ transactions.schema }};

create table if not exists {{ transactions }} (
    {%- for name, type in processed_schema() %}
    {{ name }} {{ type }}{{ ',' if not loop.last }}
    {%- endfor %}
)
diststyle even
compound sortkey (ingest_date);

create table if not exists {{ reports }} (
    {%- for name, type in run_report_schema() %}
    {{ name }} {{ type }}{{ ',' if not loop.last }}
    {%- endfor %}
)
diststyle all;

begin;

delete from {{ transactions }} where ingest_date = '{{ day }}';

{#- The key prefix part- takes every part file and leaves _SUCCESS out. -#}
copy {{ transactions }} ({{ processed_schema() | map('first') | join(', ') }})
from '{{ lake }}/processed-data/online_retail/{{ partition }}/part-'
iam_role '{{ iam_role }}'
{{ redshift_copy_options() }};

delete from {{ reports }} where ingest_date = '{{ day }}';

copy {{ reports }}
from '{{ lake }}/quality/online_retail/{{ partition }}/run_report.json'
iam_role '{{ iam_role }}'
format as json 'auto';

commit;
{%- endmacro %}
