{#-
    Write, audit, publish (doc: write_audit_publish). `retail-pipeline build` builds the gold models into the audit
    schema (RETAIL_GOLD_BUILD_SCHEMA, see generate_schema_name), runs every test there, and only when all passed
    calls this, which copies the audited tables into gold in one transaction and empties the pending queue. Readers
    of gold see the last published state or the new one, never a half-built or failed build.

        dbt run-operation publish_gold --args '{tables: [customers, products, sales_transactions]}'

    A gold table is created from its audited twin when missing, or again when its columns differ (a changed
    contract); otherwise its rows are replaced, so grants and dependent views on it survive.

    `apply_pending_to` names the fact when it was built incrementally: its audited twin then differs from gold only
    in the lines of the pending batches, and only those are replaced (delta_publish): an incremental day no longer
    copies the whole fact (at scale 10, 2.3 of an incremental build's 15.7 s; on Redshift a daily delete of every row
    would also leave the table to vacuum). If the two then hold different row counts, gold was changed in place
    (a bare `dbt build` on gold) and the whole fact is copied instead, in the same transaction.
-#}
{% macro publish_gold(
    tables,
    audit_schema='gold_audit',
    gold_schema='gold',
    clear_pending=true,
    figures_of=none,
    apply_pending_to=none
) -%}
    {%- do run_query('create schema if not exists ' ~ gold_schema) -%}
    {%- set statements = [] -%}
    {%- set delta = {} -%}
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
        {%- if table == apply_pending_to and not recreate -%}
            {%- do statements.extend(pending_lines_replaced(target_relation, audited)) -%}
            {%- do delta.update({'gold': target_relation, 'audited': audited}) -%}
        {%- else -%}
            {%- do statements.extend(copy_table(audited, target_relation, published, recreate)) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- do run_in_transaction(statements, commit=false) -%}
    {%- if delta -%}
        {%- do copy_if_counts_differ(delta['gold'], delta['audited']) -%}
    {%- endif -%}
    {#- Last: the delta above reads the pending queue. -#}
    {%- if clear_pending -%}
        {%- do run_query('delete from ' ~ source('online_retail', 'pending_batches')) -%}
    {%- endif -%}
    {%- do adapter.commit() -%}
    {{ log("published " ~ tables | join(', ') ~ " from " ~ audit_schema ~ " to " ~ gold_schema
        ~ (" (" ~ apply_pending_to ~ ": the pending batches' lines)" if delta else ""), info=true) }}
    {#- The run page's figures of what was just published, in the same dbt invocation (one start-up less). -#}
    {%- if figures_of -%}
        {{ gold_figures(figures_of, gold_schema) }}
    {%- endif -%}
{%- endmacro %}

{#-
    The fact's delta (doc: delta_publish): every line the build may have changed leaves gold, then comes back from the
    audited table. Those are the lines the fact's pre-hook removed (remove_pending_lines: gold's lines of a pending
    date, and every line a pending batch carries), which the model then put back from whichever batch has them.
    They are listed first, while gold still holds them: a few thousand keys to probe, not a join of the two facts.
-#}
{% macro pending_lines_replaced(gold, audited) -%}
    {%- set pending = ref('stg_online_retail__pending_batches') -%}
    {%- set lines = 'publish_pending_lines' -%}
    {%- set listed -%}
        create temporary table {{ lines }} as
        select line_id from {{ gold }}
        where ingest_date in (select ingest_date from {{ pending }})
        union
        select line_id from {{ ref('stg_online_retail__transactions') }}
        where ingest_date in (select ingest_date from {{ pending }})
    {%- endset -%}
    {%- set delete -%}
        delete from {{ gold }} where line_id in (select line_id from {{ lines }})
    {%- endset -%}
    {%- set insert -%}
        insert into {{ gold }}
        select * from {{ audited }} where line_id in (select line_id from {{ lines }})
    {%- endset -%}
    {{ return([listed, delete, insert, 'drop table ' ~ lines]) }}
{%- endmacro %}

{#- The delta's check, in its transaction: equal row counts, else gold was changed in place and is copied whole. -#}
{% macro copy_if_counts_differ(gold, audited) -%}
    {%- set counted = run_query(
        'select (select count(*) from ' ~ gold ~ ') as gold_rows, (select count(*) from ' ~ audited
        ~ ') as audited_rows') -%}
    {#- No row only where nothing answers: the Redshift plan's recorder (warehouse/redshift_plan.py). -#}
    {%- if counted is not none and counted.rows | length > 0
        and counted.rows[0][0] | int != counted.rows[0][1] | int -%}
        {{ log("publish_gold: " ~ gold ~ " holds " ~ counted.rows[0][0] ~ " rows, " ~ audited ~ " "
            ~ counted.rows[0][1] ~ " after the pending lines: copying it whole", info=true) }}
        {%- do run_query('delete from ' ~ gold) -%}
        {%- do run_query('insert into ' ~ gold ~ ' select * from ' ~ audited) -%}
    {%- endif -%}
{%- endmacro %}

{#-
    The statements that make `target` a copy of `source`: its rows replaced, or, when `recreate` (no table yet,
    `existing` none, or one of another shape), the table made again LIKE `source` and filled. Used both ways: the
    publish (audit to gold) and the history's reset (gold to audit).
-#}
{% macro copy_table(source, target, existing, recreate) -%}
    {%- set statements = [] -%}
    {%- if recreate -%}
        {%- if existing is not none -%}
            {%- do statements.append('drop table ' ~ target) -%}
        {%- endif -%}
        {%- do statements.append(create_empty_like(target, source)) -%}
    {%- else -%}
        {%- do statements.append('delete from ' ~ target) -%}
    {%- endif -%}
    {%- do statements.append('insert into ' ~ target ~ ' select * from ' ~ source) -%}
    {{ return(statements) }}
{%- endmacro %}

{% macro same_columns(left, right) -%}
    {{ return(column_names(left, with_types=true) == column_names(right, with_types=true)) }}
{%- endmacro %}

{#- A relation's columns from the catalogue, in order, lower case ('name' or 'name type'); [] when it has none. -#}
{% macro column_names(relation, with_types=false) -%}
    {%- set columns = [] -%}
    {%- for column in adapter.get_columns_in_relation(relation) -%}
        {%- do columns.append((column.name ~ (' ' ~ column.data_type if with_types else '')) | lower) -%}
    {%- endfor -%}
    {{ return(columns) }}
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

{#-
    The audit schema's snapshots start each pipeline build from the history gold published (doc:
    write_audit_publish). A snapshot keeps its history in its own table, so a build whose tests failed leaves its
    versions in the audit schema, and the next build would publish them: a customer's country from a batch gold
    never showed, as a version of its own. Called by prepare_sources, before every `retail-pipeline build`; with the
    gold models built in gold (a bare `dbt build`) there is no audit copy and nothing to do.
-#}
{% macro restore_published_history(gold_schema='gold') -%}
    {%- set audit_schema = generate_schema_name('gold', none) | trim -%}
    {%- if audit_schema == gold_schema -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set statements = [] -%}
    {%- for node in graph.nodes.values() | selectattr('resource_type', 'equalto', 'snapshot') -%}
        {%- set name = node.alias or node.name -%}
        {%- set audited = adapter.get_relation(database=target.database, schema=audit_schema, identifier=name) -%}
        {%- set published = adapter.get_relation(database=target.database, schema=gold_schema, identifier=name) -%}
        {%- set twin = api.Relation.create(
            database=target.database, schema=audit_schema, identifier=name, type='table') -%}
        {%- if published is none -%}
            {#- Nothing published yet: a failed first build's versions go, and the next build starts afresh. -#}
            {%- if audited is not none -%}
                {%- do statements.append('drop table ' ~ twin) -%}
            {%- endif -%}
        {%- else -%}
            {#- No audit copy (its schema dropped), or one of another shape: gold's, LIKE it. -#}
            {%- set recreate = audited is none or not same_columns(audited, published) -%}
            {%- if recreate -%}
                {%- do statements.append('create schema if not exists ' ~ audit_schema) -%}
            {%- endif -%}
            {%- do statements.extend(copy_table(published, twin, audited, recreate)) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if statements -%}
        {%- do run_in_transaction(statements) -%}
    {%- endif -%}
{%- endmacro %}
