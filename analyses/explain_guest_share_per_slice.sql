-- EXPLAIN-ready (Redshift): the distribution the guest key buys. Run it as is to see the largest customerid
-- shares of the fact; on Redshift, SVV_TABLE_INFO.skew_rows for gold.sales_transactions shows the slice skew.
-- Guest sales are keyed per invoice (doc guest_customer_key), so no key holds more than ~2% of the rows.
select
    customerid,
    is_guest,
    count(*) as sales_lines,
    cast(count(*) as decimal(18, 6)) / sum(count(*)) over () as row_share
from {{ ref('sales_transactions') }}
group by customerid, is_guest
order by sales_lines desc
limit 10
