{#-
    Schemas are exactly `staging` and `gold` on every target: users query gold.customers, not
    <target schema>_gold.customers. A model without a custom schema falls back to the target's schema.
-#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
