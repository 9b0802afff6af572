{#-
    How the gold contracts' constraints are rendered, per engine.

    DuckDB enforces foreign keys, so a dimension that the fact references could no longer be rebuilt (dropped and
    swapped) by the next `dbt build`: there the foreign keys are left out of the DDL. So are primary keys: DuckDB
    backs each with an ART index, which at scale 1 makes building the fact ~1 s slower (a third of the build) for
    no query benefit, and makes MERGE check uniqueness eagerly while it updates the key's rows. The `unique` and
    `relationships` tests check both on every build; not_null is rendered and enforced as dbt would.

    Redshift takes foreign keys as planner hints (not enforced). dbt renders `to: ref(...)` as a three-part name,
    "db"."gold"."customers", which Redshift's REFERENCES does not take: it is rendered as "gold"."customers" here.
-#}
{% macro duckdb__get_table_columns_and_constraints() -%}
    {{ return(retail_table_columns_and_constraints(keys='omit')) }}
{%- endmacro %}

{% macro redshift__get_table_columns_and_constraints() -%}
    {{ return(retail_table_columns_and_constraints(keys='schema_qualified')) }}
{%- endmacro %}

{#- keys: 'omit' leaves primary and foreign keys out; 'schema_qualified' keeps them, foreign keys as schema.table. -#}
{% macro retail_table_columns_and_constraints(keys) -%}
    {%- set columns = {} -%}
    {%- for name, column in model['columns'].items() -%}
        {%- set kept = {} -%}
        {%- do kept.update(column) -%}
        {%- do kept.update({'constraints': retail_constraints(column.get('constraints') or [], keys)}) -%}
        {%- do columns.update({name: kept}) -%}
    {%- endfor -%}
    {%- set column_ddl = adapter.render_raw_columns_constraints(raw_columns=columns) -%}
    {%- set model_ddl = adapter.render_raw_model_constraints(
        raw_constraints=retail_constraints(model['constraints'] or [], keys)) -%}
    {%- set ddl = column_ddl + model_ddl -%}
    (
    {%- for line in ddl %}
        {{ line }}{{ ',' if not loop.last }}
    {%- endfor %}
    )
{%- endmacro %}

{% macro retail_constraints(constraints, keys) -%}
    {%- set kept = [] -%}
    {%- for constraint in constraints -%}
        {%- if constraint['type'] in ('primary_key', 'unique') and keys == 'omit' -%}
        {%- elif constraint['type'] != 'foreign_key' -%}
            {%- do kept.append(constraint) -%}
        {%- elif keys == 'schema_qualified' and constraint.get('to') -%}
            {#- "db"."gold"."customers" -> "gold"."customers" (identifiers here hold no dots) -#}
            {%- set two_part = constraint['to'].split('.')[-2:] | join('.') -%}
            {%- set rewritten = {} -%}
            {%- do rewritten.update(constraint) -%}
            {%- do rewritten.update({
                'to': none,
                'to_columns': [],
                'expression': two_part ~ ' (' ~ constraint['to_columns'] | join(', ') ~ ')',
            }) -%}
            {%- do kept.append(rewritten) -%}
        {%- elif keys == 'schema_qualified' -%}
            {%- do kept.append(constraint) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(kept) }}
{%- endmacro %}

{#-
    dbt-redshift's create_table_as, changed for the temporary table of an incremental run (the rest is as shipped):
    - no constraints on it (dbt-labs/dbt-adapters#644: a temporary table may not reference a permanent one);
      the contract is still asserted against the model's columns before it is created;
    - no dist or sort on it (dbt-labs/dbt-adapters#2085: it lives for one merge, redistributing it is waste).
-#}
{% macro redshift__create_table_as(temporary, relation, sql) -%}
    {%- set _dist = config.get('dist') -%}
    {%- set _sort_type = config.get('sort_type', validator=validation.any['compound', 'interleaved']) -%}
    {%- set _sort = config.get('sort', validator=validation.any[list, basestring]) -%}
    {%- set sql_header = config.get('sql_header', none) -%}
    {%- set backup = config.get('backup') -%}
    {%- set contract_config = config.get('contract') -%}

    {{ sql_header if sql_header is not none }}

    {%- if contract_config.enforced and not temporary %}

    create table
        {{ relation }}
        {{ get_table_columns_and_constraints() }}
        {{ get_assert_columns_equivalent(sql) }}
        {%- set sql = get_select_subquery(sql) %}
        {% if backup == false -%}backup no{%- endif %}
        {{ dist(_dist) }}
        {{ sort(_sort_type, _sort) }}
    ;

    insert into {{ relation }}
        (
            {{ sql }}
        )
    ;

    {%- elif temporary %}
    {%- if contract_config.enforced -%}
        {{ get_assert_columns_equivalent(sql) }}
    {%- endif %}

    create temporary table
        {{ relation.include(database=false, schema=false) }}
    as (
        {{ sql }}
    );

    {%- else %}

    create table
        {{ relation }}
        {% if backup == false -%}backup no{%- endif %}
        {{ dist(_dist) }}
        {{ sort(_sort_type, _sort) }}
    as (
        {{ sql }}
    );

    {%- endif %}
{%- endmacro %}
