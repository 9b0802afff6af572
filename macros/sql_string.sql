{#-
    The one way a value from outside the project (RETAIL_LAKE, an IAM role, a dbt var, an ingest date) enters SQL:
    as a string literal, single quotes doubled. A value holding a NUL, a line break or a backslash stops the
    compilation instead: Redshift reads a backslash in a literal as an escape (PostgreSQL and DuckDB do not), so no
    one quoting is right on every engine, and no lake path, role or stock code needs one.
-#}
{% macro sql_string(value) -%}
    {%- set text = value | string -%}
    {%- for forbidden in ['\x00', '\n', '\r', '\\'] -%}
        {%- if forbidden in text -%}
            {{ exceptions.raise_compiler_error(
                "a value for a SQL string holds a NUL, line break or backslash: " ~ (text | truncate(80) | tojson)) }}
        {%- endif -%}
    {%- endfor -%}
    {{ return("'" ~ text | replace("'", "''") ~ "'") }}
{%- endmacro %}
