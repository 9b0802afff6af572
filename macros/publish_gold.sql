{#-
    Write, audit, publish (doc: write_audit_publish). `retail-pipeline build` builds the gold models into the audit
    schema (RETAIL_GOLD_BUILD_SCHEMA, see generate_schema_name), runs every test there, and only when all passed
    calls this, which copies the audited tables into gold in one transaction and empties the pending queue. Readers
    of gold see the last published state or the new one, never a half-built or failed build.

        dbt run-operation publish_gold --args '{tables: [customers, products, sales_transactions]}'

    A gold table is created from its audited twin when missing, or again when its columns differ (a changed
    contract); otherwise its rows are replaced, so grants and dependent views on it survive.
-#}
{% macro publish_gold(tables, audit_schema='gold_audit', gold_schema='gold', clear_pending=true, figures_of=none) -%}
    {%- do run_query('create schema if not exists ' ~ gold_schema) -%}
    {%- set statements = [] -%}
    {%- for table in tables -%}
        {%- set audited = adapter.get_relation(database=target.database, schema=audit_schema, identifier=table) -%}
        {%- if audited is none -%}
            {{ exceptions.raise_compiler_error(
                "nothing to publish: " ~ audit_schema ~ "." ~ table ~ " does not exist") }}
        {%- endif -%}
        {%- set published = adapter.get_relation(database=target.database, schema=gold_schema, identifier=table) -%}
        {%- set recreate = published is none or not same_columns(audited, published) -%}
        {%- set target_relation = api.Relation.create(
            database=audited.database, schema=gold_schema, identifier=table, type='table') -%}
        {%- if recreate -%}
            {%- if published is not none -%}
                {%- do statements.append('drop table ' ~ target_relation) -%}
            {%- endif -%}
            {%- do statements.append(create_empty_like(target_relation, audited)) -%}
        {%- else -%}
            {%- do statements.append('delete from ' ~ target_relation) -%}
        {%- endif -%}
        {%- do statements.append('insert into ' ~ target_relation ~ ' select * from ' ~ audited) -%}
    {%- endfor -%}
    {%- if clear_pending -%}
        {%- do statements.append('delete from ' ~ source('online_retail', 'pending_batches')) -%}
    {%- endif -%}
    {%- do run_in_transaction(statements) -%}
    {{ log("published " ~ tables | join(', ') ~ " from " ~ audit_schema ~ " to " ~ gold_schema, info=true) }}
    {#- The run page's figures of what was just published, in the same dbt invocation (one start-up less). -#}
    {%- if figures_of -%}
        {{ gold_figures(figures_of, gold_schema) }}
    {%- endif -%}
{%- endmacro %}

{% macro same_columns(left, right) -%}
    {%- set described = [] -%}
    {%- for relation in [left, right] -%}
        {%- set columns = [] -%}
        {%- for column in adapter.get_columns_in_relation(relation) -%}
            {%- do columns.append(column.name | lower ~ ' ' ~ column.data_type | lower) -%}
        {%- endfor -%}
        {%- do described.append(columns) -%}
    {%- endfor -%}
    {{ return(described[0] == described[1]) }}
{%- endmacro %}

{#- Redshift (and PostgreSQL): LIKE keeps the columns, and on Redshift the dist and sort keys and encodings. -#}
{% macro create_empty_like(relation, model) -%}
    {{ return(adapter.dispatch('create_empty_like')(relation, model)) }}
{%- endmacro %}

{% macro default__create_empty_like(relation, model) -%}
    {{ return('create table ' ~ relation ~ ' (like ' ~ model ~ ')') }}
{%- endmacro %}

{% macro duckdb__create_empty_like(relation, model) -%}
    {{ return('create table ' ~ relation ~ ' as select * from ' ~ model ~ ' limit 0') }}
{%- endmacro %}

{#-
    The fact's pre-hook on an incremental build: remove every line of the pending batches, and every line those
    batches now carry, so the model puts back each of them from the batch that wins it (models/gold/sales_transactions.sql).
    A replaced batch's old lines go with it; a backfilled older date is applied like any other.
-#}
{% macro remove_pending_lines() -%}
    {%- if is_incremental() -%}
        {%- set pending = ref('stg_online_retail__pending_batches') -%}
        delete from {{ this }}
        where
            ingest_date in (select ingest_date from {{ pending }})
            or line_id in (
                select line_id from {{ ref('stg_online_retail__transactions') }}
                where ingest_date in (select ingest_date from {{ pending }})
            )
    {%- endif -%}
{%- endmacro %}
