{#-
    The lake's tables as a relation to select from.

    On Redshift (and any warehouse) this is the source table that load_processed_data COPYs into. On DuckDB the
    source reads the lake directly: processed-data/ through read_csv in the TSV dialect, the run reports through
    read_json. `ingest_date` narrows the read to that one partition, so an incremental build does not re-read
    old files; none reads every partition.
-#}
{% macro lake_source(table_name, ingest_date=none) -%}
    {{ return(adapter.dispatch('lake_source')(table_name, ingest_date)) }}
{%- endmacro %}

{% macro default__lake_source(table_name, ingest_date) -%}
    {{ return(source('online_retail', table_name)) }}
{%- endmacro %}

{% macro duckdb__lake_source(table_name, ingest_date) -%}
    {#- source() is still called, so lineage and docs show the source. -#}
    {%- set relation = source('online_retail', table_name) -%}
    {%- set partition = 'ingest_date=' ~ (check_ingest_date(ingest_date) if ingest_date else '*') -%}
    {%- if table_name == 'transactions' -%}
        {%- set path = lake_root() ~ '/processed-data/online_retail/' ~ partition ~ '/part-*.tsv' -%}
        {{ return("read_csv('" ~ path ~ "', columns = " ~ duckdb_columns(processed_schema()) ~ ", " ~ duckdb_read_options() ~ ")") }}
    {%- elif table_name == 'run_reports' -%}
        {%- set path = lake_root() ~ '/quality/online_retail/' ~ partition ~ '/run_report.json' -%}
        {{ return("read_json('" ~ path ~ "', columns = " ~ duckdb_columns(run_report_schema()) ~ ", format = 'auto')") }}
    {%- else -%}
        {{ return(relation) }}
    {%- endif -%}
{%- endmacro %}

{#- RETAIL_LAKE: a folder or s3://bucket/prefix, without a trailing slash. -#}
{% macro lake_root() -%}
    {{ return(env_var('RETAIL_LAKE', 'data/lake').strip().rstrip('/')) }}
{%- endmacro %}

{% macro duckdb_columns(schema) -%}
    {%- set pairs = [] -%}
    {%- for name, type in schema -%}
        {%- do pairs.append("'" ~ name ~ "': '" ~ type | upper ~ "'") -%}
    {%- endfor -%}
    {{ return('{' ~ pairs | join(', ') ~ '}') }}
{%- endmacro %}

{#- An ingest date is YYYY-MM-DD and nothing else: it goes into paths and SQL literals. -#}
{% macro check_ingest_date(ingest_date) -%}
    {%- set text = ingest_date | string -%}
    {%- if not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', text) -%}
        {{ exceptions.raise_compiler_error("ingest_date must be YYYY-MM-DD, got '" ~ text ~ "'") }}
    {%- endif -%}
    {{ return(text) }}
{%- endmacro %}

{#-
    The one batch an incremental build is narrowed to, or none: the var ingest_date, else the environment's
    RETAIL_INGEST_DATE (what `retail-pipeline build --ingest-date` sets: unlike a changed --vars, it does not make
    dbt parse the whole project again). Only read at run time, inside is_incremental() branches.
-#}
{% macro selected_ingest_date() -%}
    {%- set value = var('ingest_date', none) or env_var('RETAIL_INGEST_DATE', '') -%}
    {{ return(check_ingest_date(value) if value else none) }}
{%- endmacro %}
