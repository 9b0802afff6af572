{#-
    The batches loaded since gold was last published: what the next build must apply. The load adds a date, the
    publish step empties the queue, so a failed build leaves its dates here for the next one (doc: day_semantics).
-#}

with

source as (

    select * from {{ source('online_retail', 'pending_batches') }}

),

renamed as (

    select
        cast(ingest_date as date) as ingest_date,
        cast(run_id as varchar(128)) as run_id,
        cast(loaded_at as timestamp) as loaded_at

    from source

)

select * from renamed
