{#- Helpers the load and the models share: the lake's root, an ingest date checked before it reaches SQL. -#}

{#- RETAIL_LAKE: a folder or s3://bucket/prefix, without a trailing slash. -#}
{% macro lake_root() -%}
    {{ return(env_var('RETAIL_LAKE', 'data/lake').strip().rstrip('/')) }}
{%- endmacro %}

{% macro duckdb_columns(schema) -%}
    {%- set pairs = [] -%}
    {%- for name, type in schema -%}
        {%- do pairs.append("'" ~ name ~ "': '" ~ type | upper ~ "'") -%}
    {%- endfor -%}
    {{ return('{' ~ pairs | join(', ') ~ '}') }}
{%- endmacro %}

{#- An ingest date is YYYY-MM-DD and nothing else: it goes into paths and SQL literals. -#}
{% macro check_ingest_date(ingest_date) -%}
    {%- set text = ingest_date | string -%}
    {%- if not modules.re.fullmatch('[0-9]{4}-[0-9]{2}-[0-9]{2}', text) -%}
        {{ exceptions.raise_compiler_error("ingest_date must be YYYY-MM-DD, got '" ~ text ~ "'") }}
    {%- endif -%}
    {{ return(text) }}
{%- endmacro %}

{#- A key the load was handed, checked: it must lie in the date's partition of `zone`. -#}
{% macro batch_key(day, key, zone='processed-data') -%}
    {%- set folder = zone ~ '/online_retail/ingest_date=' ~ day ~ '/' -%}
    {%- if not key.startswith(folder) or '..' in key -%}
        {{ exceptions.raise_compiler_error("not a file of " ~ folder ~ ": '" ~ key ~ "'") }}
    {%- endif -%}
    {{ return(key) }}
{%- endmacro %}
