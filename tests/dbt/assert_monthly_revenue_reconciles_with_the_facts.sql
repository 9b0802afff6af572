{#-
    gold.monthly_revenue holds every line of the two facts once (doc: monthly_revenue): its gross_sales sum to the
    sales fact's total_sales, its returned_sales and fees_and_adjustments together to sales_returns', and its goods
    to the returns of merchandise. One row per figure that differs.
-#}
{{ config(severity='error') }}

with

mart as (

    select
        coalesce(sum(gross_sales), 0) as gross_sales,
        coalesce(sum(returned_sales + fees_and_adjustments), 0) as returns_total,
        coalesce(sum(returned_sales), 0) as goods_returned
    from {{ ref('monthly_revenue') }}

),

sales as (

    select coalesce(sum(total_sales), 0) as total_sales
    from {{ ref('sales_transactions') }}

),

returns as (

    select
        coalesce(sum(total_sales), 0) as total_sales,
        coalesce(sum(case when product_kind = 'merchandise' then total_sales else 0 end), 0) as goods
    from {{ ref('sales_returns') }}

),

compared as (

    select
        'gross_sales' as figure,
        mart.gross_sales as in_mart,
        sales.total_sales as in_facts
    from mart cross join sales

    union all

    select
        'returned_sales + fees_and_adjustments' as figure,
        mart.returns_total as in_mart,
        returns.total_sales as in_facts
    from mart cross join returns

    union all

    select
        'returned_sales' as figure,
        mart.goods_returned as in_mart,
        returns.goods as in_facts
    from mart cross join returns

)

select
    figure,
    in_mart,
    in_facts
from compared
where in_mart <> in_facts
