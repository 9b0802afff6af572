{#-
    gold's customerid: the customer's own id, or for a guest sale (no customer id) a key of its own per invoice.
    See the doc block `guest_customer_key` (models/_docs.md). The guest key is the negated first 60 bits of
    md5(invoice_no): deterministic and the same on every engine and every run (so incremental merges and the
    customers dimension always agree), never positive (so never a real customer id), and one per invoice, which
    spreads guest sales over thousands of keys instead of one.
-#}
{% macro customer_key(customer_id, invoice_no) -%}
    coalesce({{ customer_id }}, {{ guest_customer_key(invoice_no) }})
{%- endmacro %}

{% macro guest_customer_key(invoice_no) -%}
    {{ return(adapter.dispatch('guest_customer_key')(invoice_no)) }}
{%- endmacro %}

{% macro default__guest_customer_key(invoice_no) -%}
    -1 * strtol(substring(md5({{ invoice_no }}), 1, 15), 16)
{%- endmacro %}

{% macro duckdb__guest_customer_key(invoice_no) -%}
    -1 * cast('0x' || substring(md5({{ invoice_no }}), 1, 15) as bigint)
{%- endmacro %}
