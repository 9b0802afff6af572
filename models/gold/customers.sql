{#-
    One row per customerid of gold.sales_transactions: every known customer, and one guest customer per guest
    invoice (doc: guest_customer_key). A customer seen under several countries gets one (doc: customer_country_rule).
    Recomputed in full from staging on every build, in the audit
    schema, then published (doc: dimension_refresh).
-#}
{{
    config(
        materialized='table',
        dist='customerid',
        sort='customerid',
    )
}}

with

transactions as (

    select * from {{ ref('stg_online_retail__transactions') }}

),

invoices as (

    -- The key and the country rule need nothing finer than the invoice, and invoices are ~20x fewer than lines.
    select
        customer_id,
        invoice_no,
        invoiced_at,
        country

    from transactions
    group by customer_id, invoice_no, invoiced_at, country

),

keyed as (

    select
        {{ customer_key('customer_id', 'invoice_no') }} as customerid,
        customer_id is null as is_guest,
        invoice_no,
        invoiced_at,
        country

    from invoices

),

latest_country as (

    -- The country of the customer's latest invoice that has one (the contract keeps a line without a country);
    -- two countries at the same moment go alphabetically.
    select
        customerid,
        country

    from (
        select
            customerid,
            country,
            row_number() over (
                partition by customerid
                order by
                    case when country is null then 1 else 0 end asc,
                    invoiced_at desc,
                    invoice_no desc,
                    country asc
            ) as recency_rank
        from keyed
    ) as ranked

    where recency_rank = 1

),

summary as (

    select
        customerid,
        is_guest,
        count(distinct country) as country_count,
        count(distinct invoice_no) as invoice_count,
        min(invoiced_at) as first_invoicedate,
        max(invoiced_at) as last_invoicedate

    from keyed
    group by customerid, is_guest

),

final as (

    select
        cast(summary.customerid as bigint) as customerid,
        cast(latest_country.country as varchar(64)) as country,
        cast(summary.is_guest as boolean) as is_guest,
        cast(summary.country_count as integer) as country_count,
        cast(summary.invoice_count as integer) as invoice_count,
        cast(summary.first_invoicedate as timestamp) as first_invoicedate,
        cast(summary.last_invoicedate as timestamp) as last_invoicedate

    from summary
    inner join latest_country
        on summary.customerid = latest_country.customerid

)

select * from final
