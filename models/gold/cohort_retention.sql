{#-
    One row per first-purchase month (cohort) and each calendar month from it to the last month in the data: how
    many of the cohort's known customers bought in that month, and what share of the cohort that is (doc: cohorts).
    Months in which nobody of the cohort bought are rows with 0. Dist and sort: doc dist_sort_choices.
-#}
{{
    config(
        materialized='table',
        dist='all',
        sort=['cohort_month', 'activity_month'],
        sort_type='compound',
    )
}}

with

sales as (

    select * from {{ ref('sales_transactions') }}

),

customer_months as (

    select distinct
        customerid,
        cast(date_trunc('month', invoicedate) as date) as activity_month

    from sales
    where not is_guest

),

cohorts as (

    select
        customerid,
        min(activity_month) as cohort_month

    from customer_months
    group by customerid

),

cohort_sizes as (

    select
        cohort_month,
        count(*) as cohort_customers

    from cohorts
    group by cohort_month

),

months as (

    -- Every month the data has a sale in (the data has no gap month), guests' included.
    select distinct cast(date_trunc('month', invoicedate) as date) as activity_month
    from sales

),

active as (

    select
        cohorts.cohort_month,
        customer_months.activity_month,
        count(*) as active_customers

    from customer_months
    inner join cohorts on customer_months.customerid = cohorts.customerid
    group by cohorts.cohort_month, customer_months.activity_month

),

grid as (

    select
        cohort_sizes.cohort_month,
        months.activity_month,
        cohort_sizes.cohort_customers

    from cohort_sizes
    inner join months on cohort_sizes.cohort_month <= months.activity_month

),

final as (

    select
        cast(grid.cohort_month as date) as cohort_month,
        cast(grid.activity_month as date) as activity_month,
        cast(
            (extract(year from grid.activity_month) - extract(year from grid.cohort_month)) * 12
            + extract(month from grid.activity_month) - extract(month from grid.cohort_month)
            as integer
        ) as months_since_first_purchase,
        cast(grid.cohort_customers as integer) as cohort_customers,
        cast(coalesce(active.active_customers, 0) as integer) as active_customers,
        cast(
            cast(coalesce(active.active_customers, 0) as decimal(18, 6)) / grid.cohort_customers
            as decimal(9, 6)
        ) as retention_rate

    from grid
    left join active
        on
            grid.cohort_month = active.cohort_month
            and grid.activity_month = active.activity_month

)

select * from final
