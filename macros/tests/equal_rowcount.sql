{#-
    One row when the model's row count differs from compare_model's; none when they agree.
    compare_column counts the distinct values of that column of compare_model instead of its rows (e.g. the fact has
    one row per distinct line_id of staging).
-#}
{% test equal_rowcount(model, compare_model, compare_column=none) %}

with

model_rows as (

    select count(*) as row_count from {{ model }}

),

compare_rows as (

    select
        {{ 'count(distinct ' ~ compare_column ~ ')' if compare_column else 'count(*)' }} as row_count
    from {{ compare_model }}

)

select
    model_rows.row_count as model_row_count,
    compare_rows.row_count as compare_row_count
from model_rows
cross join compare_rows
where model_rows.row_count <> compare_rows.row_count

{% endtest %}
