{#-
    One row per return line (a cancellation line: goods taken back, or a fee, discount or correction, told apart
    by product_kind) of the batches the warehouse holds, each line once, from the latest batch that has it, paired where the rule finds it with the sale line it reverses
    (doc: returns). Recomputed in full on every build: returns are about 2% of the lines. Dist and sort: doc returns.
-#}
{{
    config(
        materialized='table',
        dist='even',
        sort=['invoicedate'],
        sort_type='compound',
    )
}}

with

returns as (

    select * from {{ ref('stg_online_retail__returns') }}

),

sales as (

    select * from {{ ref('sales_transactions') }}

),

deduplicated as (

    -- A return line delivered again in a later batch (same line_id) is kept once, from its latest batch.
    select *
    from (
        select
            returns.*,
            row_number() over (partition by line_id order by ingest_date desc) as delivery_rank
        from returns
    ) as ranked
    where delivery_rank = 1

),

candidates as (

    -- The sales a return can reverse: the same known customer and stock code, invoiced no later than the return,
    -- with at least as many units as it takes back. The latest wins; ties go to the later invoice, then line_id.
    select
        deduplicated.line_id,
        sales.line_id as paired_line_id,
        sales.invoiceno as paired_invoiceno,
        row_number() over (
            partition by deduplicated.line_id
            order by sales.invoicedate desc, sales.invoiceno desc, sales.line_id asc
        ) as candidate_rank

    from deduplicated
    inner join sales
        on
            deduplicated.customer_id = sales.customerid
            and deduplicated.stock_code = sales.stockcode
            and deduplicated.invoiced_at >= sales.invoicedate
            and -deduplicated.quantity <= sales.quantity
    where not sales.is_guest

),

final as (

    select
        cast(deduplicated.line_id as varchar(32)) as line_id,
        cast(deduplicated.invoice_no as varchar(16)) as invoiceno,
        cast(deduplicated.stock_code as varchar(32)) as stockcode,
        -- Not every cancellation line is goods: fees, discounts, postage and manual corrections are here too.
        cast({{ product_kind('deduplicated.stock_code') }} as varchar(32)) as product_kind,
        cast(deduplicated.customer_id as bigint) as customerid,
        cast(deduplicated.customer_id is null as boolean) as is_guest,
        cast(deduplicated.invoiced_at as timestamp) as invoicedate,
        cast(deduplicated.quantity as bigint) as quantity,
        cast(deduplicated.unit_price as decimal(18, 3)) as unitprice,
        cast(deduplicated.total_sales as decimal(38, 3)) as total_sales,
        cast(deduplicated.country as varchar(64)) as country,
        cast(candidates.paired_line_id as varchar(32)) as paired_line_id,
        cast(candidates.paired_invoiceno as varchar(16)) as paired_invoiceno,
        cast(candidates.paired_line_id is not null as boolean) as is_paired,
        cast(deduplicated.ingest_date as date) as ingest_date

    from deduplicated
    left join candidates
        on
            deduplicated.line_id = candidates.line_id
            and candidates.candidate_rank = 1

)

select * from final
