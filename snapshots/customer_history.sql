{#-
    Every version of each known customer's country and first and last purchase, with the time it was valid from
    and to (doc: customer_history). A check snapshot of gold.customers: a build whose customers row differs in one
    of the checked columns closes the current version (dbt_valid_to) and opens a new one; a customer no longer in
    gold.customers (a corrected batch removed all their lines) has their current version closed. Guests are left
    out: a guest customer is one invoice and never changes.
-#}
{% snapshot customer_history %}

{{
    config(
        schema='gold',
        unique_key='customerid',
        strategy='check',
        check_cols=['country', 'first_invoicedate', 'last_invoicedate'],
        hard_deletes='invalidate',
        dist='customerid',
        sort='customerid',
    )
}}

select
    customerid,
    country,
    first_invoicedate,
    last_invoicedate

from {{ ref('customers') }}
where not is_guest

{% endsnapshot %}
