{#-
    One row per line of each processed batch, typed and renamed; no business rules.

    On Redshift this is a view over the table load_processed_data COPYs into. On DuckDB the source is the lake
    itself, so staging is kept as a table there (the engine needs it): an incremental build reads only the batch it
    is narrowed to (var ingest_date or RETAIL_INGEST_DATE), else the batches after the last one loaded, and replaces
    those partitions instead of re-reading every file of the lake. A first build or --full-refresh reads them all.
    That config (incremental on DuckDB, a view elsewhere; delete+insert on ingest_date) is all in
    _online_retail__models.yml; dbt_project.yml holds only the staging folder's schema and its view default.
-#}

{%- set ingest_date = selected_ingest_date() if is_incremental() else none %}

with

source as (

    select * from {{ lake_source('transactions', ingest_date=ingest_date) }}
    {% if is_incremental() and not ingest_date -%}
        where ingest_date > (
            select coalesce(max(this_model.ingest_date), cast('1900-01-01' as date))
            from {{ this }} as this_model
        )
    {%- endif %}

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
