-- EXPLAIN-ready (Redshift): prefix the compiled query with EXPLAIN.
-- products is DISTSTYLE ALL: every node holds a copy, so joining it moves no fact rows (DS_DIST_ALL_NONE).
-- Non-product lines (postage, fees, manual) are left out by products.is_product.
select
    products.stockcode,
    products.description,
    sum(sales.quantity) as units,
    sum(sales.total_sales) as total_sales
from {{ ref('sales_transactions') }} as sales
inner join {{ ref('products') }} as products
    on sales.stockcode = products.stockcode
where products.is_product
group by products.stockcode, products.description
order by total_sales desc
limit 20
