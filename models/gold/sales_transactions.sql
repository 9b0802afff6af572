{#-
    One row per sales line (line_id), merged batch by batch (doc: incremental_loading). customerid is the customer,
    or the invoice's guest key for a guest sale (doc: guest_customer_key). Dist and sort: doc dist_sort_choices.
-#}
{{
    config(
        materialized='incremental',
        incremental_strategy='merge',
        unique_key='line_id',
        on_schema_change='fail',
        dist='customerid',
        sort=['invoicedate'],
        sort_type='compound',
    )
}}

with

transactions as (

    select * from {{ ref('stg_online_retail__transactions') }}
    {% if is_incremental() -%}
        {%- set ingest_date = selected_ingest_date() -%}
        {%- if ingest_date %}
            where ingest_date = cast('{{ ingest_date }}' as date)
        {%- else %}
            -- Only the batches after the last one merged: old batches are not read again.
            where ingest_date > (
                select coalesce(max(this_model.ingest_date), cast('1900-01-01' as date))
                from {{ this }} as this_model
            )
        {%- endif %}
    {%- endif %}

),

deduplicated as (

    -- A line delivered again in a later batch (same line_id) is kept once, from its latest batch.
    select *
    from (
        select
            transactions.*,
            row_number() over (
                partition by line_id
                order by ingest_date desc
            ) as delivery_rank
        from transactions
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
