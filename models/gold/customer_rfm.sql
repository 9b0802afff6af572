{#-
    One row per known customer (not a guest) with a sale in gold.sales_transactions: recency, frequency and
    monetary value as of the last invoice date in the data, and a quintile score for each (doc: rfm). Recomputed in
    full on every build (doc: dimension_refresh). Dist and sort: doc dist_sort_choices.
-#}
{{
    config(
        materialized='table',
        dist='all',
        sort='customerid',
    )
}}

with

sales as (

    select * from {{ ref('sales_transactions') }}

),

as_of as (

    -- The data's own "today": the last invoice date of any sale, guests' included.
    select cast(max(invoicedate) as date) as as_of_date
    from sales

),

per_customer as (

    select
        customerid,
        cast(min(invoicedate) as date) as first_invoice_date,
        cast(max(invoicedate) as date) as last_invoice_date,
        count(distinct invoiceno) as frequency,
        sum(total_sales) as monetary

    from sales
    where not is_guest
    group by customerid

),

measured as (

    select
        per_customer.*,
        as_of.as_of_date,
        -- A date minus a date is a whole number of days on Redshift and DuckDB alike.
        as_of.as_of_date - per_customer.last_invoice_date as recency_days

    from per_customer
    cross join as_of

),

scored as (

    -- Quintiles by rank, 5 the best: the most recent, the most invoices, the most money. Ties are split by
    -- customerid so that a score never depends on the engine's sort.
    select
        measured.*,
        ntile(5) over (order by recency_days desc, customerid asc) as recency_score,
        ntile(5) over (order by frequency asc, customerid asc) as frequency_score,
        ntile(5) over (order by monetary asc, customerid asc) as monetary_score

    from measured

),

final as (

    select
        cast(customerid as bigint) as customerid,
        cast(as_of_date as date) as as_of_date,
        cast(first_invoice_date as date) as first_invoice_date,
        cast(last_invoice_date as date) as last_invoice_date,
        cast(recency_days as integer) as recency_days,
        cast(frequency as integer) as frequency,
        cast(monetary as decimal(38, 3)) as monetary,
        cast(recency_score as smallint) as recency_score,
        cast(frequency_score as smallint) as frequency_score,
        cast(monetary_score as smallint) as monetary_score,
        cast(
            cast(recency_score as varchar(1))
            || cast(frequency_score as varchar(1))
            || cast(monetary_score as varchar(1))
            as varchar(3)
        ) as rfm_cell

    from scored

)

select * from final
