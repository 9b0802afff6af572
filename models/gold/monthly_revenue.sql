{#-
    One row per calendar month and country with a sale or a return: gross sales, goods returned, fees and
    adjustments, net revenue, orders and customers (doc: monthly_revenue). Recomputed in full on every build. Dist and sort: doc monthly_revenue.
-#}
{{
    config(
        materialized='table',
        dist='all',
        sort=['revenue_month', 'country'],
        sort_type='compound',
    )
}}

with

sales as (

    select * from {{ ref('sales_transactions') }}

),

returns as (

    select * from {{ ref('sales_returns') }}

),

monthly_sales as (

    select
        cast(date_trunc('month', invoicedate) as date) as revenue_month,
        -- A line without a country (the contract keeps it) is reported as the dataset's own 'Unspecified', so
        -- the month's key stays whole and sales and returns still pair up on it.
        coalesce(country, 'Unspecified') as country,
        sum(total_sales) as gross_sales,
        sum(case when {{ product_kind('stockcode') }} = 'merchandise' then total_sales else 0 end)
            as merchandise_sales,
        count(distinct invoiceno) as orders,
        -- Guests' keys are per invoice: counting them would count orders again. Known customers only.
        count(distinct case when not is_guest then customerid end) as customers

    from sales
    group by 1, 2

),

monthly_returns as (

    select
        cast(date_trunc('month', invoicedate) as date) as revenue_month,
        coalesce(country, 'Unspecified') as country,
        -- A cancellation line is goods taken back only when its code is merchandise: the same C invoices carry
        -- Amazon's fees, bank charges, discounts, refunded postage and manual corrections (doc: monthly_revenue).
        sum(case when product_kind = 'merchandise' then total_sales else 0 end) as returned_sales,
        sum(case when product_kind = 'merchandise' then 0 else total_sales end) as fees_and_adjustments,
        count(distinct invoiceno) as cancellations

    from returns
    group by 1, 2

),

final as (

    select
        cast(coalesce(monthly_sales.revenue_month, monthly_returns.revenue_month) as date) as revenue_month,
        cast(coalesce(monthly_sales.country, monthly_returns.country) as varchar(64)) as country,
        cast(coalesce(monthly_sales.gross_sales, 0) as decimal(38, 3)) as gross_sales,
        cast(coalesce(monthly_sales.merchandise_sales, 0) as decimal(38, 3)) as merchandise_sales,
        cast(coalesce(monthly_returns.returned_sales, 0) as decimal(38, 3)) as returned_sales,
        cast(coalesce(monthly_returns.fees_and_adjustments, 0) as decimal(38, 3)) as fees_and_adjustments,
        cast(
            coalesce(monthly_sales.gross_sales, 0)
            + coalesce(monthly_returns.returned_sales, 0)
            + coalesce(monthly_returns.fees_and_adjustments, 0) as decimal(38, 3)
        ) as net_revenue,
        cast(coalesce(monthly_sales.orders, 0) as integer) as orders,
        cast(coalesce(monthly_returns.cancellations, 0) as integer) as cancellations,
        cast(coalesce(monthly_sales.customers, 0) as integer) as customers

    from monthly_sales
    full outer join monthly_returns
        on
            monthly_sales.revenue_month = monthly_returns.revenue_month
            and monthly_sales.country = monthly_returns.country

)

select * from final
