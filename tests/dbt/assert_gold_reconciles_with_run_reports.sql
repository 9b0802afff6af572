{#-
    Gold holds exactly what the transform reported clean (doc: reconciliation). One row per loaded batch whose lines
    in the fact, or their total_sales, differ from the batch's run report; a batch without lines, or lines without
    any report, is a row too. And one row (ingest_date NULL) when the fact holds lines that no loaded batch has: the
    lines of a batch that a corrected re-delivery replaced.
-#}
{{ config(severity='error') }}

with

reports as (

    select
        ingest_date,
        status,
        rows_clean,
        total_sales
    from {{ ref('stg_online_retail__run_reports') }}

),

batch_lines as (

    select
        ingest_date,
        line_id
    from {{ ref('stg_online_retail__transactions') }}

),

gold as (

    select
        batch_lines.ingest_date,
        count(*) as fact_rows,
        sum(sales.total_sales) as fact_total_sales
    from batch_lines
    inner join {{ ref('sales_transactions') }} as sales
        on batch_lines.line_id = sales.line_id
    group by batch_lines.ingest_date

),

compared as (

    select
        reports.status,
        reports.rows_clean,
        gold.fact_rows,
        reports.total_sales as report_total_sales,
        gold.fact_total_sales,
        coalesce(reports.ingest_date, gold.ingest_date) as ingest_date
    from reports
    full outer join gold
        on reports.ingest_date = gold.ingest_date

),

orphans as (

    select count(*) as orphan_rows
    from {{ ref('sales_transactions') }} as sales
    where not exists (
        select 1
        from batch_lines
        where batch_lines.line_id = sales.line_id
    )

)

select
    status,
    rows_clean,
    fact_rows,
    report_total_sales,
    fact_total_sales,
    ingest_date
from compared
where
    coalesce(status, 'succeeded') = 'succeeded'
    and (
        coalesce(rows_clean, -1) <> coalesce(fact_rows, -1)
        or coalesce(report_total_sales, -1) <> coalesce(fact_total_sales, -1)
    )

union all

select
    'orphaned' as status,
    0 as rows_clean,
    orphan_rows as fact_rows,
    cast(null as decimal(38, 3)) as report_total_sales,
    cast(null as decimal(38, 3)) as fact_total_sales,
    cast(null as date) as ingest_date
from orphans
where orphan_rows > 0
