-- EXPLAIN-ready (Redshift): prefix the compiled query (target/compiled/retail/analyses/) with EXPLAIN.
-- Fact joined to customers on customerid: both are DISTKEY(customerid), so the join is local to each slice
-- and the plan shows DS_DIST_NONE (no redistribution, no broadcast). See the doc block dist_sort_choices.
select
    customers.country,
    count(*) as sales_lines,
    sum(sales.total_sales) as total_sales
from {{ ref('sales_transactions') }} as sales
inner join {{ ref('customers') }} as customers
    on sales.customerid = customers.customerid
group by customers.country
order by total_sales desc
