{#-
    The guest key's goal (doc: guest_customer_key): no single customerid holds more than 2% of the fact's rows, so
    no Redshift slice carries much more than its share. Returns each customerid over the line. Below
    var('customer_share_min_rows') rows the share of one customer says nothing, and nothing is returned.
-#}
{{ config(severity='error', error_if='>0') }}

with

sales as (

    select customerid from {{ ref('sales_transactions') }}

),

all_sales as (

    select count(*) as line_count from sales

),

per_customer as (

    select
        customerid,
        count(*) as line_count
    from sales
    group by customerid

)

select
    per_customer.customerid,
    per_customer.line_count,
    all_sales.line_count as total_rows,
    cast(per_customer.line_count as decimal(18, 6)) / all_sales.line_count as row_share
from per_customer
cross join all_sales
where
    all_sales.line_count >= {{ sql_integer(var('customer_share_min_rows'), 'customer_share_min_rows') }}
    and per_customer.line_count > 0.02 * all_sales.line_count
