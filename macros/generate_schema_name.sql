{#-
    Schemas are exactly `staging` and `gold` on every target: users query gold.customers, not
    <target schema>_gold.customers. A model without a custom schema falls back to the target's schema.

    The gold models build into RETAIL_GOLD_BUILD_SCHEMA when it is set: `retail-pipeline build` sets it to the audit
    schema, tests there, and publishes to gold only when every test passed (macros/publish_gold.sql). A bare
    `dbt build` leaves it unset and builds gold in place, the developer's loop.
-#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- elif custom_schema_name | trim == 'gold' -%}
        {{ sql_identifier(env_var('RETAIL_GOLD_BUILD_SCHEMA', 'gold'), 'RETAIL_GOLD_BUILD_SCHEMA') }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
