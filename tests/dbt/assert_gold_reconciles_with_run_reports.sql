{#-
    Gold holds exactly what the transform reported clean (doc: reconciliation). One row per loaded batch whose lines
    in the fact, or their total_sales, differ from the batch's run report; a batch without lines (unless its report
    counted no clean row), or lines without any report, is a row too. And one row (status 'orphaned', ingest_date NULL) when the fact holds lines that no
    loaded batch has: the lines of a batch that a corrected re-delivery replaced.
    One left join of the fact to the batches' lines finds both: a line that matches no batch line is an orphan. (An
    inner join for the batches and an anti-join for the orphans read the fact twice; the slowest test at scale 100.)
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

-- A fact line once per batch that holds it (a re-delivered line is in two), or once with no batch: an orphan.
fact_lines as (

    select
        batch_lines.ingest_date,
        sales.total_sales,
        batch_lines.line_id is null as is_orphan
    from {{ ref('sales_transactions') }} as sales
    left join batch_lines
        on sales.line_id = batch_lines.line_id

),

gold as (

    select
        ingest_date,
        is_orphan,
        count(*) as fact_rows,
        sum(total_sales) as fact_total_sales
    from fact_lines
    group by ingest_date, is_orphan

),

-- The orphans' row has no ingest_date, so it matches no report and comes through on its own.
compared as (

    select
        gold.fact_rows,
        reports.total_sales as report_total_sales,
        coalesce(gold.is_orphan, false) as is_orphan,
        coalesce(reports.ingest_date, gold.ingest_date) as ingest_date,
        case when gold.is_orphan then 'orphaned' else reports.status end as status,
        case when gold.is_orphan then 0 else reports.rows_clean end as rows_clean,
        case when gold.is_orphan then null else gold.fact_total_sales end as fact_total_sales
    from reports
    full outer join gold
        on reports.ingest_date = gold.ingest_date

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
    is_orphan
    or (
        coalesce(status, 'succeeded') = 'succeeded'
        and (
            -- A batch with no line in the fact has none there: right when its report counted no clean row (a day
            -- of returns only), a row here when it counted some. Lines without a report have no count: a row.
            coalesce(rows_clean, -1) <> coalesce(fact_rows, 0)
            or coalesce(report_total_sales, -1) <> coalesce(fact_total_sales, 0)
        )
    )
