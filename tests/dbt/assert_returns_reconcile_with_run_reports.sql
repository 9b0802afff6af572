{#-
    Rows in = clean + returns + quarantined, batch by batch, and the returns' money with them (doc: returns). One
    row per loaded batch whose return lines differ in number from what its run report leaves for them (rows_in -
    rows_clean - rows_quarantined), or in their sum of total_sales from the report's returns_total_sales (checked
    where the report gives it: NULL for reports written before it), or returns without a report; and one row
    (ingest_date NULL) when gold.sales_returns does not hold each loaded return line exactly once, with its amount.
-#}
{{ config(severity='error') }}

with

reports as (

    select
        ingest_date,
        returns_total_sales as reported_total_sales,
        rows_in - rows_clean - rows_quarantined as reported_returns
    from {{ ref('stg_online_retail__run_reports') }}

),

loaded as (

    select
        ingest_date,
        count(*) as loaded_returns,
        sum(total_sales) as loaded_total_sales
    from {{ ref('stg_online_retail__returns') }}
    group by ingest_date

),

compared as (

    select
        reports.reported_returns,
        reports.reported_total_sales,
        coalesce(reports.ingest_date, loaded.ingest_date) as ingest_date,
        coalesce(loaded.loaded_returns, 0) as loaded_returns,
        coalesce(loaded.loaded_total_sales, 0) as loaded_total_sales
    from reports
    full outer join loaded
        on reports.ingest_date = loaded.ingest_date

),

-- Each loaded line once. A line_id is the md5 of the raw row, so every delivery of a line has the same amount.
loaded_lines as (

    select
        line_id,
        max(total_sales) as total_sales
    from {{ ref('stg_online_retail__returns') }}
    group by line_id

),

gold_lines as (

    select
        (select count(*) from loaded_lines) as loaded_lines,
        (select count(*) from {{ ref('sales_returns') }}) as gold_lines,
        (select coalesce(sum(total_sales), 0) from loaded_lines) as loaded_total_sales,
        (select coalesce(sum(total_sales), 0) from {{ ref('sales_returns') }}) as gold_total_sales

)

select
    ingest_date,
    reported_returns,
    loaded_returns,
    reported_total_sales,
    loaded_total_sales
from compared
where
    reported_returns is null
    or reported_returns <> loaded_returns
    or reported_total_sales <> loaded_total_sales

union all

select
    null as ingest_date,
    loaded_lines as reported_returns,
    gold_lines as loaded_returns,
    loaded_total_sales as reported_total_sales,
    gold_total_sales as loaded_total_sales
from gold_lines
where loaded_lines <> gold_lines or loaded_total_sales <> gold_total_sales
