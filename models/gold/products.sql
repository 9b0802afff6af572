{#-
    One row per stock code sold: the description and price it is catalogued under (doc: product_pick_rule), and
    whether it is merchandise at all (doc: non_product_codes). Recomputed in full from staging on every build,
    in the audit schema, then published (doc: dimension_refresh).
-#}
{{
    config(
        materialized='table',
        dist='all',
        sort='stockcode',
    )
}}

with

transactions as (

    select * from {{ ref('stg_online_retail__transactions') }}

),

variants as (

    -- Every (description, price) a code was sold under; a line re-delivered in a later batch counts once.
    select
        stock_code,
        description,
        unit_price,
        count(distinct line_id) as line_count,
        max(invoiced_at) as last_sold_at

    from transactions
    group by stock_code, description, unit_price

),

ranked as (

    select
        variants.*,
        row_number() over (
            partition by stock_code
            order by
                case when description is null then 1 else 0 end asc,
                line_count desc,
                last_sold_at desc,
                unit_price asc,
                description asc
        ) as variant_rank

    from variants

),

summary as (

    select
        stock_code,
        count(distinct description) as description_count,
        count(distinct unit_price) as price_count,
        min(unit_price) as min_unitprice,
        max(unit_price) as max_unitprice

    from variants
    group by stock_code

),

final as (

    select
        cast(ranked.stock_code as varchar(32)) as stockcode,
        cast(ranked.description as varchar(512)) as description,
        cast(ranked.unit_price as decimal(18, 3)) as unitprice,
        cast({{ product_kind('ranked.stock_code') }} as varchar(32)) as product_kind,
        cast(
            {{ product_kind('ranked.stock_code') }} = 'merchandise' as boolean
        ) as is_product,
        cast(summary.description_count as integer) as description_count,
        cast(summary.price_count as integer) as price_count,
        cast(summary.min_unitprice as decimal(18, 3)) as min_unitprice,
        cast(summary.max_unitprice as decimal(18, 3)) as max_unitprice

    from ranked
    inner join summary
        on ranked.stock_code = summary.stock_code

    where ranked.variant_rank = 1

)

select * from final
