{#-
    One row per sales line (line_id) of the batches the warehouse holds: each line once, from the latest batch that
    has it (doc: incremental_loading). customerid is the customer, or the invoice's guest key for a guest sale
    (doc: guest_customer_key). Dist and sort: doc dist_sort_choices.
-#}
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        pre_hook="{{ remove_pending_lines() }}",
        dist='customerid',
        sort=['invoicedate'],
        sort_type='compound',
    )
}}

-- depends_on: {{ ref('stg_online_retail__pending_batches') }}

with

transactions as (

    select * from {{ ref('stg_online_retail__transactions') }}

),

candidates as (

    -- A first build takes every line. An incremental one takes every copy of each line the table lacks: the
    -- pre-hook removed the lines of the pending batches, so exactly those come back, from whichever batch now has
    -- them; a line of a replaced batch that no batch has any more stays out.
    select transactions.*
    from transactions
    {%- if is_incremental() %}
        where not exists (
            select 1
            from {{ this }} as published
            where published.line_id = transactions.line_id
        )
    {%- endif %}

),

deduplicated as (

    -- A line delivered again in a later batch (same line_id) is kept once, from its latest batch.
    select *
    from (
        select
            candidates.*,
            row_number() over (
                partition by line_id
                order by ingest_date desc
            ) as delivery_rank
        from candidates
    ) as ranked
    where delivery_rank = 1

),

final as (

    select
        cast(line_id as varchar(32)) as line_id,
        cast(invoice_no as varchar(16)) as invoiceno,
        cast(stock_code as varchar(32)) as stockcode,
        cast({{ customer_key('customer_id', 'invoice_no') }} as bigint) as customerid,
        cast(customer_id is null as boolean) as is_guest,
        cast(invoiced_at as timestamp) as invoicedate,
        cast(quantity as bigint) as quantity,
        cast(unit_price as decimal(18, 3)) as unitprice,
        cast(total_sales as decimal(38, 3)) as total_sales,
        cast(country as varchar(64)) as country,
        cast(ingest_date as date) as ingest_date

    from deduplicated

)

select * from final
