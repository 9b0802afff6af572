{#-
    Gold holds exactly what the transform reported clean (doc: reconciliation). One row per ingest date where the
    fact's lines from that batch, or their total_sales, differ from the batch's run report; a succeeded batch
    without lines, or lines without any report, is a row too. A batch whose latest report did not succeed is left
    out: the transform kept the last good output in place, which was reconciled when it was loaded.
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

)

select *
from compared
where
    coalesce(status, 'succeeded') = 'succeeded'
    and (
        coalesce(rows_clean, -1) <> coalesce(fact_rows, -1)
        or coalesce(report_total_sales, -1) <> coalesce(fact_total_sales, -1)
    )
