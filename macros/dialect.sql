{#-
    The TSV dialect of processed-data/ and the run report's fields, as dbt sees them. These are the Jinja twins of
    retail_core/dialect.py (PROCESSED_SCHEMA, duckdb_read_options(), redshift_copy_options()), which is the one
    definition: tests/unit/test_warehouse_dialect.py fails when the two disagree.
-#}

{% macro processed_schema() -%}
    {{ return([
        ('line_id', 'varchar(32)'),
        ('invoice_no', 'varchar(16)'),
        ('stock_code', 'varchar(32)'),
        ('description', 'varchar(512)'),
        ('quantity', 'bigint'),
        ('invoice_date', 'timestamp'),
        ('unit_price', 'decimal(18,3)'),
        ('customer_id', 'bigint'),
        ('country', 'varchar(64)'),
        ('total_sales', 'decimal(38,3)'),
        ('ingest_date', 'date'),
    ]) }}
{%- endmacro %}

{#- The run report fields the warehouse reads (the JSON has more; they are ignored). The sums are exact decimals
    written as strings, so they are read as text and cast where they are compared. A field added here reaches a
    warehouse created before it through prepare_sources (macros/load_batches.sql), NULL for the reports loaded then. -#}
{% macro run_report_schema() -%}
    {{ return([
        ('ingest_date', 'date'),
        ('status', 'varchar(32)'),
        ('rows_in', 'bigint'),
        ('rows_clean', 'bigint'),
        ('rows_quarantined', 'bigint'),
        ('total_sales', 'varchar(64)'),
        ('run_id', 'varchar(128)'),
        ('returns_total_sales', 'varchar(64)'),
    ]) }}
{%- endmacro %}

{#- The load's queue: batches loaded since gold was last published (macros/load_batches.sql, publish_gold.sql). -#}
{% macro pending_batch_schema() -%}
    {{ return([
        ('ingest_date', 'date'),
        ('run_id', 'varchar(128)'),
        ('loaded_at', 'timestamp'),
    ]) }}
{%- endmacro %}

{% macro duckdb_read_options() -%}
    {{ return(
        "delim = '\\t', header = true, quote = '', escape = '', nullstr = '', "
        ~ "timestampformat = '%Y-%m-%d %H:%M:%S', hive_partitioning = false, auto_detect = false"
    ) }}
{%- endmacro %}

{% macro redshift_copy_options() -%}
    {{ return(
        "DELIMITER '\\t' IGNOREHEADER 1 EMPTYASNULL NULL AS '\\000' "
        ~ "TIMEFORMAT 'YYYY-MM-DD HH:MI:SS' DATEFORMAT 'YYYY-MM-DD' ENCODING UTF8"
    ) }}
{%- endmacro %}
