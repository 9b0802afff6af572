-- Every sales line's total is its quantity times its unit price, exactly (decimal arithmetic, no rounding).
select
    line_id,
    quantity,
    unitprice,
    total_sales
from {{ ref('sales_transactions') }}
where total_sales <> quantity * unitprice
