{#- Combinations of `columns` that occur more than once: a compound key's uniqueness (dbt_utils'
    unique_combination_of_columns, without the hub). -#}
{% test unique_combination(model, columns) %}

select
    {{ columns | join(', ') }},
    count(*) as occurrences
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1

{% endtest %}
