{#- Rows of the model where `expression` is not true (dbt_utils.expression_is_true, without the hub). -#}
{% test expression_is_true(model, expression, column_name=none) %}

select *
from {{ model }}
where not ({{ column_name ~ ' ' if column_name }}{{ expression }})

{% endtest %}
