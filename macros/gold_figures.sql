{#-
    The figures of published gold that the run page shows (retail_core/run_page.py), read the same way on every
    engine: warehouse/figures.py calls this after a build and reads the one line it logs.

        dbt run-operation gold_figures --args '{tables: [customers, products, ...]}'

    Rows per table that exists (one union query), and gross, returns, net and orders per month over all countries
    from monthly_revenue (returns: every cancellation line, goods and fees and adjustments alike, as the run
    report's returns_total_sales). Numbers travel as text, so that decimals keep their digits through the JSON line.
-#}
{% macro gold_figures(tables, gold_schema='gold') -%}
    {#- Which tables exist, from the catalog rather than dbt's relation cache: publish_gold may have created them
        in this same invocation, which the cache does not know. -#}
    {%- set existing = [] -%}
    {%- for row in run_query(
        "select table_name from information_schema.tables where table_schema = " ~ sql_string(gold_schema)
    ).rows -%}
        {%- do existing.append(row[0] | lower) -%}
    {%- endfor -%}
    {%- set counts = [] -%}
    {%- for table in tables if table in existing -%}
        {%- set relation = api.Relation.create(
            database=target.database, schema=gold_schema, identifier=table, type='table') -%}
        {%- do counts.append(
            "select " ~ sql_string(table) ~ " as table_name, count(*) as row_count from " ~ relation) -%}
    {%- endfor -%}
    {%- set rows = {} -%}
    {%- if counts -%}
        {%- for row in run_query(counts | join(' union all ')).rows -%}
            {%- do rows.update({row[0]: row[1] | int}) -%}
        {%- endfor -%}
    {%- endif -%}
    {%- set monthly = [] -%}
    {%- if 'monthly_revenue' in existing -%}
        {%- set revenue = api.Relation.create(
            database=target.database, schema=gold_schema, identifier='monthly_revenue', type='table') -%}
        {#- Gold an earlier version published (a build whose tests failed leaves it) has no fees_and_adjustments:
            its returned_sales held every cancellation line. Only a catalogue that lists the table's columns without
            it says so; anything else takes the current shape, and fails loudly if that is wrong. -#}
        {%- set columns = column_names(revenue) -%}
        {%- set returned = 'returned_sales' if columns and 'fees_and_adjustments' not in columns
            else 'returned_sales + fees_and_adjustments' -%}
        {%- for row in run_query(
            "select cast(revenue_month as varchar(10)), cast(sum(gross_sales) as varchar(40)),"
            ~ " cast(sum(" ~ returned ~ ") as varchar(40)), cast(sum(net_revenue) as varchar(40)),"
            ~ " cast(sum(orders) as varchar(20)) from " ~ revenue ~ " group by revenue_month order by revenue_month"
        ).rows -%}
            {%- do monthly.append([row[0], row[1], row[2], row[3], row[4]]) -%}
        {%- endfor -%}
    {%- endif -%}
    {{ log('retail-gold-figures: ' ~ tojson({'rows': rows, 'monthly': monthly}), info=true) }}
{%- endmacro %}
