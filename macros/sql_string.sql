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

{#- A number from outside (a dbt var) as a SQL integer literal: digits only, else the compilation stops. -#}
{% macro sql_integer(value, name) -%}
    {%- set text = value | string | trim -%}
    {%- if not modules.re.fullmatch('[0-9]{1,18}', text) -%}
        {{ exceptions.raise_compiler_error(name ~ " must be a whole number, got " ~ (text | truncate(40) | tojson)) }}
    {%- endif -%}
    {{ return(text) }}
{%- endmacro %}

{#- A schema name from outside (an environment variable): a plain lower-case identifier, else the compilation stops. -#}
{% macro sql_identifier(value, name) -%}
    {%- set text = value | string | trim -%}
    {%- if not modules.re.fullmatch('[a-z_][a-z0-9_]{0,126}', text) -%}
        {{ exceptions.raise_compiler_error(
            name ~ " must be a lower-case identifier (a-z, 0-9, _), got " ~ (text | truncate(40) | tojson)) }}
    {%- endif -%}
    {{ return(text) }}
{%- endmacro %}
