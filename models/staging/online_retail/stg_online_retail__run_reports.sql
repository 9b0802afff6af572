{#-
    One row per batch's run report, typed; no business rules. A view on every engine, the staging default: on
    DuckDB it reads the reports' JSON files (one small file per batch) whenever it is queried, so the reconciliation
    test always compares gold with the reports as they are now.
-#}

with

source as (

    select * from {{ lake_source('run_reports') }}

),

renamed as (

    select
        cast(ingest_date as date) as ingest_date,
        cast(status as varchar(32)) as status,
        cast(rows_in as bigint) as rows_in,
        cast(rows_clean as bigint) as rows_clean,
        cast(rows_quarantined as bigint) as rows_quarantined,
        -- The report writes the exact sum as a decimal string (a float would round it).
        cast(total_sales as decimal(38, 3)) as total_sales

    from source

)

select * from renamed
