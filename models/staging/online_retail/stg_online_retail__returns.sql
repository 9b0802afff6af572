{#-
    One row per return line (a cancellation taking goods back) of each loaded batch, typed and renamed as the sales
    are; no business rules. A view over the source table the load fills (macros/load_batches.sql) on every engine.
-#}

with

source as (

    select * from {{ source('online_retail', 'returns') }}

),

renamed as (

    select
        cast(line_id as varchar(32)) as line_id,
        cast(invoice_no as varchar(16)) as invoice_no,
        cast(stock_code as varchar(32)) as stock_code,
        cast(description as varchar(512)) as description,
        cast(quantity as bigint) as quantity,
        cast(invoice_date as timestamp) as invoiced_at,
        cast(unit_price as decimal(18, 3)) as unit_price,
        cast(customer_id as bigint) as customer_id,
        cast(country as varchar(64)) as country,
        cast(total_sales as decimal(38, 3)) as total_sales,
        cast(ingest_date as date) as ingest_date

    from source

)

select * from renamed
