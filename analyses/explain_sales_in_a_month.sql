-- EXPLAIN-ready (Redshift): prefix the compiled query with EXPLAIN, and compare with SVL_QUERY_SUMMARY after a
-- run: the fact's COMPOUND SORTKEY(invoicedate) lets zone maps skip every block outside the month, so the scan
-- reads about 1/13 of the table (is_rrscan = true in the summary).
select
    cast(date_trunc('day', invoicedate) as date) as sales_day,
    count(distinct invoiceno) as invoices,
    sum(total_sales) as total_sales
from {{ ref('sales_transactions') }}
where
    invoicedate >= cast('2011-11-01' as timestamp)
    and invoicedate < cast('2011-12-01' as timestamp)
group by cast(date_trunc('day', invoicedate) as date)
order by sales_day
