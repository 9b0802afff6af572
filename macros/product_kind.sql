{#-
    What a stock code sells: 'merchandise', or the kind of non-product line it is (postage, fee, manual, ...),
    from the var non_product_stock_codes (dbt_project.yml), matched case-insensitively, and gift vouchers by prefix.
    The vars come from outside (dbt_project.yml, --vars): each reaches SQL through sql_string.
-#}
{% macro product_kind(stock_code) -%}
    {%- set kinds = {} -%}
    {%- for code, kind in var('non_product_stock_codes').items() -%}
        {%- do kinds.setdefault(kind, []).append(sql_string(code | upper)) -%}
    {%- endfor -%}
    {%- set prefix = var('gift_voucher_stock_code_prefix') | lower -%}
    case
        {%- for kind, codes in kinds.items() %}
        when upper({{ stock_code }}) in ({{ codes | join(', ') }}) then {{ sql_string(kind) }}
        {%- endfor %}
        when lower(left({{ stock_code }}, {{ prefix | length }})) = {{ sql_string(prefix) }} then 'gift_voucher'
        else 'merchandise'
    end
{%- endmacro %}
