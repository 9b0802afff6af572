{#-
    One row per loaded batch: the transform's run report for that ingest date, typed; no business rules. Only
    succeeded batches are loaded, so this is the report of the batch the warehouse holds for each date.
-#}

with

source as (

    select * from {{ source('online_retail', 'run_reports') }}

),

renamed as (

    select
        cast(ingest_date as date) as ingest_date,
        cast(status as varchar(32)) as status,
        cast(rows_in as bigint) as rows_in,
        cast(rows_clean as bigint) as rows_clean,
        cast(rows_quarantined as bigint) as rows_quarantined,
        -- The report writes the exact sum as a decimal string (a float would round it).
        cast(total_sales as decimal(38, 3)) as total_sales,
        -- NULL for a report written before the transform summed its returns, or loaded before the column existed.
        cast(returns_total_sales as decimal(38, 3)) as returns_total_sales,
        cast(run_id as varchar(128)) as run_id

    from source

)

select * from renamed
