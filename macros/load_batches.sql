{#-
    The load: processed batches of the lake into the warehouse's source tables, the same relations on every engine
    (sources online_retail.*, schema staging). warehouse/load.py decides which batches are new and calls these:

        dbt run-operation prepare_sources                                      # create or extend; say what is loaded
        dbt run-operation load_batches --args '{batches: [{ingest_date: 2024-01-31, files: [...],
                                                 copy_manifest: ...}]}'          # one transaction per date

    Each date is replaced whole in one transaction: its lines, its run report, and a row in the pending queue that
    the next build reads and the publish step clears (doc: day_semantics). A batch's files are exactly those its
    partition manifest names (warehouse/load.py reads it): Redshift COPYs them from S3 through the partition's COPY
    manifest (the dialect's COPY options, macros/dialect.sql); DuckDB inserts from read_csv over the same list.
-#}

{#- The marker warehouse/load.py looks for in dbt's log to read the warehouse's state. -#}
{% macro warehouse_state_marker() -%}
    {{ return('retail-warehouse-state: ') }}
{%- endmacro %}

{% macro prepare_sources() -%}
    {%- for statement in source_tables_ddl() -%}
        {%- do run_query(statement) -%}
    {%- endfor -%}
    {%- do add_missing_source_columns() -%}
    {%- set reports = source('online_retail', 'run_reports') -%}
    {%- set pending = source('online_retail', 'pending_batches') -%}
    {%- set loaded = {} -%}
    {%- for row in run_query(
        "select cast(ingest_date as varchar(10)) as ingest_date, run_id from " ~ reports
    ).rows -%}
        {%- do loaded.update({row[0]: row[1]}) -%}
    {%- endfor -%}
    {%- set queued = [] -%}
    {%- for row in run_query("select cast(ingest_date as varchar(10)) as ingest_date from " ~ pending).rows -%}
        {%- do queued.append(row[0]) -%}
    {%- endfor -%}
    {#- Here because every pipeline build starts with this operation: one dbt invocation less. -#}
    {%- do restore_published_history() -%}
    {{ log(warehouse_state_marker() ~ tojson({'loaded': loaded, 'pending': queued | sort}), info=true) }}
{%- endmacro %}

{#- The four source tables: (relation, columns, Redshift's physical clauses). -#}
{% macro source_tables() -%}
    {%- set physical = source_table_physical() -%}
    {{ return([
        (source('online_retail', 'transactions'), processed_schema(), physical.transactions),
        (source('online_retail', 'returns'), processed_schema(), physical.transactions),
        (source('online_retail', 'run_reports'), run_report_schema(), physical.small),
        (source('online_retail', 'pending_batches'), pending_batch_schema(), physical.small),
    ]) }}
{%- endmacro %}

{% macro source_tables_ddl() -%}
    {%- set tables = source_tables() -%}
    {%- set statements = ['create schema if not exists ' ~ tables[0][0].schema] -%}
    {%- for relation, schema, physical in tables -%}
        {%- do statements.append(
            'create table if not exists ' ~ relation ~ ' (' ~ column_list(schema) ~ ')' ~ physical) -%}
    {%- endfor -%}
    {{ return(statements) }}
{%- endmacro %}

{#-
    A warehouse created by an earlier version of the project lacks the columns declared since (the run reports'
    returns_total_sales): they are added, NULL in the rows loaded before, which the tests read as "not reported".
    Columns are only added, never retyped or dropped. The catalogue decides, as Redshift has no ADD COLUMN IF NOT
    EXISTS; on a table just created nothing is missing and nothing is sent.
-#}
{% macro add_missing_source_columns() -%}
    {%- set statements = [] -%}
    {%- for relation, schema, physical in source_tables() -%}
        {%- set existing = column_names(relation) -%}
        {%- for name, type in schema if name not in existing -%}
            {%- do statements.append('alter table ' ~ relation ~ ' add column ' ~ name ~ ' ' ~ type) -%}
        {%- endfor -%}
    {%- endfor -%}
    {#- Committed here: the catalogue query opened a transaction, which an operation would roll back at its end. -#}
    {%- if statements -%}
        {%- do run_in_transaction(statements) -%}
        {%- for statement in statements -%}
            {{ log("source table upgraded: " ~ statement, info=true) }}
        {%- endfor -%}
    {%- endif -%}
{%- endmacro %}

{#- Redshift: the lines spread evenly and sorted by batch (a load deletes and a build reads one batch at a time); the
    small tables on every node. -#}
{% macro source_table_physical() -%}
    {{ return(adapter.dispatch('source_table_physical')()) }}
{%- endmacro %}

{% macro default__source_table_physical() -%}
    {{ return({'transactions': '', 'small': ''}) }}
{%- endmacro %}

{% macro redshift__source_table_physical() -%}
    {{ return({'transactions': ' diststyle even compound sortkey (ingest_date)', 'small': ' diststyle all'}) }}
{%- endmacro %}

{% macro column_list(schema) -%}
    {%- set columns = [] -%}
    {%- for name, type in schema -%}
        {%- do columns.append(name ~ ' ' ~ type) -%}
    {%- endfor -%}
    {{ return(columns | join(', ')) }}
{%- endmacro %}

{% macro load_batches(batches, lake=none, iam_role=none) -%}
    {%- for batch in batches -%}
        {%- do run_in_transaction(load_batch_statements(batch, lake, iam_role)) -%}
        {{ log("loaded ingest_date=" ~ batch.ingest_date ~ " into " ~ source('online_retail', 'transactions'),
               info=true) }}
    {%- endfor -%}
{%- endmacro %}

{#- One batch's statements, run in one transaction: readers see the old batch or the new one, never a mix. -#}
{% macro load_batch_statements(batch, lake=none, iam_role=none) -%}
    {%- set day = check_ingest_date(batch.ingest_date) -%}
    {%- set lake = (lake or lake_root()).rstrip('/') -%}
    {%- set transactions = source('online_retail', 'transactions') -%}
    {%- set returns = source('online_retail', 'returns') -%}
    {%- set reports = source('online_retail', 'run_reports') -%}
    {%- set pending = source('online_retail', 'pending_batches') -%}
    {%- set partition = 'ingest_date=' ~ day -%}
    {%- set copies = batch_copy_statements(day, batch, lake, iam_role) -%}
    {%- set loaded_at = modules.datetime.datetime.utcnow().strftime('%Y-%m-%d %H:%M:%S') -%}
    {#- A batch transformed before returns were kept apart has none: its date's returns are only deleted. -#}
    {{ return([
        "delete from " ~ transactions ~ " where ingest_date = " ~ sql_string(day),
        copies.transactions,
        "delete from " ~ returns ~ " where ingest_date = " ~ sql_string(day),
    ] + ([copies.returns] if batch.returns_files else []) + [
        "delete from " ~ reports ~ " where ingest_date = " ~ sql_string(day),
        copies.report,
        "delete from " ~ pending ~ " where ingest_date = " ~ sql_string(day),
        "insert into " ~ pending ~ " (ingest_date, run_id, loaded_at) select ingest_date, run_id, cast("
            ~ sql_string(loaded_at) ~ " as timestamp) from " ~ reports ~ " where ingest_date = " ~ sql_string(day),
    ]) }}
{%- endmacro %}

{% macro batch_copy_statements(day, batch, lake, iam_role) -%}
    {{ return(adapter.dispatch('batch_copy_statements')(day, batch, lake, iam_role)) }}
{%- endmacro %}

{% macro redshift__batch_copy_statements(day, batch, lake, iam_role) -%}
    {%- if not lake.startswith('s3://') -%}
        {{ exceptions.raise_compiler_error(
            "COPY reads S3: RETAIL_LAKE must be s3://bucket/prefix, got '" ~ lake ~ "'") }}
    {%- endif -%}
    {%- set iam_role = iam_role or var('copy_iam_role', env_var('REDSHIFT_COPY_IAM_ROLE', '')) -%}
    {%- if not iam_role -%}
        {{ exceptions.raise_compiler_error(
            "COPY needs an IAM role: set REDSHIFT_COPY_IAM_ROLE or --vars '{copy_iam_role: arn:...}'") }}
    {%- endif -%}
    {%- set partition = 'ingest_date=' ~ day -%}
    {#- The MANIFEST option: COPY reads the files the partition's COPY manifest lists, and nothing else. -#}
    {{ return({
        'transactions': "copy " ~ source('online_retail', 'transactions')
            ~ " (" ~ processed_schema() | map('first') | join(', ') ~ ")"
            ~ " from " ~ sql_string(lake ~ "/" ~ batch_key(day, batch.copy_manifest))
            ~ " iam_role " ~ sql_string(iam_role) ~ " manifest " ~ redshift_copy_options(),
        'returns': "copy " ~ source('online_retail', 'returns')
            ~ " (" ~ processed_schema() | map('first') | join(', ') ~ ")"
            ~ " from " ~ sql_string(lake ~ "/" ~ batch_key(day, batch.returns_copy_manifest, 'returns'))
            ~ " iam_role " ~ sql_string(iam_role) ~ " manifest " ~ redshift_copy_options()
            if batch.returns_files else none,
        'report': "copy " ~ source('online_retail', 'run_reports')
            ~ " (" ~ run_report_schema() | map('first') | join(', ') ~ ")"
            ~ " from " ~ sql_string(lake ~ "/quality/online_retail/" ~ partition ~ "/run_report.json")
            ~ " iam_role " ~ sql_string(iam_role) ~ " format as json 'auto'",
    }) }}
{%- endmacro %}

{#- DuckDB reads a local folder laid out as the lake (warehouse/load.py copies an S3 lake's batches to one). -#}
{% macro duckdb__batch_copy_statements(day, batch, lake, iam_role) -%}
    {%- set partition = 'ingest_date=' ~ day -%}
    {%- set columns = processed_schema() | map('first') | join(', ') -%}
    {%- set report_columns = run_report_schema() | map('first') | join(', ') -%}
    {%- set quoted = [] -%}
    {%- for key in batch.files -%}
        {%- do quoted.append(sql_string(lake ~ '/' ~ batch_key(day, key))) -%}
    {%- endfor -%}
    {%- if not quoted -%}
        {{ exceptions.raise_compiler_error("ingest_date=" ~ day ~ ": the partition manifest names no file") }}
    {%- endif -%}
    {%- set parts = '[' ~ quoted | join(', ') ~ ']' -%}
    {%- set returned = [] -%}
    {%- for key in batch.returns_files or [] -%}
        {%- do returned.append(sql_string(lake ~ '/' ~ batch_key(day, key, 'returns'))) -%}
    {%- endfor -%}
    {%- set report = lake ~ '/quality/online_retail/' ~ partition ~ '/run_report.json' -%}
    {{ return({
        'transactions': "insert into " ~ source('online_retail', 'transactions') ~ " (" ~ columns ~ ") select "
            ~ columns ~ " from read_csv(" ~ parts ~ ", columns = "
            ~ duckdb_columns(processed_schema()) ~ ", " ~ duckdb_read_options() ~ ")",
        'returns': "insert into " ~ source('online_retail', 'returns') ~ " (" ~ columns ~ ") select "
            ~ columns ~ " from read_csv([" ~ returned | join(', ') ~ "], columns = "
            ~ duckdb_columns(processed_schema()) ~ ", " ~ duckdb_read_options() ~ ")" if returned else none,
        'report': "insert into " ~ source('online_retail', 'run_reports') ~ " (" ~ report_columns ~ ") select "
            ~ report_columns ~ " from read_json(" ~ sql_string(report) ~ ", columns = "
            ~ duckdb_columns(run_report_schema()) ~ ", format = 'auto')",
    }) }}
{%- endmacro %}

{#-
    The statements in one transaction, through dbt's own transaction handling (so that dbt's bookkeeping and the
    server agree): BEGIN unless one is open already (an introspection query opens one on DuckDB), then COMMIT. On
    Redshift dbt sends BEGIN and COMMIT even with autocommit on. An error rolls everything back. With commit=false
    the transaction stays open for the caller's further statements and its own adapter.commit() (publish_gold).
-#}
{% macro run_in_transaction(statements, commit=true) -%}
    {%- call statement('retail_transaction', auto_begin=True) -%}
        select 1
    {%- endcall -%}
    {%- for statement in statements -%}
        {%- do run_query(statement) -%}
    {%- endfor -%}
    {%- if commit -%}
        {%- do adapter.commit() -%}
    {%- endif -%}
{%- endmacro %}
