{#-
    Rows in = clean + returns + quarantined, batch by batch (doc: returns). One row per loaded batch whose return
    lines differ in number from what its run report leaves for them (rows_in - rows_clean - rows_quarantined), or
    returns without a report; and one row (ingest_date NULL) when gold.sales_returns does not hold each loaded return
    line exactly once.
-#}
{{ config(severity='error') }}

with

reports as (

    select
        ingest_date,
        rows_in - rows_clean - rows_quarantined as reported_returns
    from {{ ref('stg_online_retail__run_reports') }}

),

loaded as (

    select
        ingest_date,
        count(*) as loaded_returns
    from {{ ref('stg_online_retail__returns') }}
    group by ingest_date

),

compared as (

    select
        reports.reported_returns,
        coalesce(reports.ingest_date, loaded.ingest_date) as ingest_date,
        coalesce(loaded.loaded_returns, 0) as loaded_returns
    from reports
    full outer join loaded
        on reports.ingest_date = loaded.ingest_date

),

gold_lines as (

    select
        (select count(distinct line_id) from {{ ref('stg_online_retail__returns') }}) as loaded_lines,
        (select count(*) from {{ ref('sales_returns') }}) as gold_lines

)

select
    ingest_date,
    reported_returns,
    loaded_returns
from compared
where reported_returns is null or reported_returns <> loaded_returns

union all

select
    null as ingest_date,
    loaded_lines as reported_returns,
    gold_lines as loaded_returns
from gold_lines
where loaded_lines <> gold_lines
