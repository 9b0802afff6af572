{#-
    Data tests on DuckDB: their one read-only query, run outside a transaction and without a copy in target/run/.
    dbt's default test materialization opens a transaction for it (a BEGIN before, a ROLLBACK after) and writes
    the query to target/run/ with a debug line: two statements, five events, a rollback and a file per test node,
    about a sixth of a test node's time at scale 1 (docs/performance.md, target 6). The same query as the default
    sends (the limit inside the subquery only, the sql_header where dbt's flag asks for it), the same verdict; the
    compiled test stays in target/compiled/. Failing rows to store (--store-failures, and the build's re-run of
    the tests that failed, which so also writes their target/run/ copies) go through dbt's default, as does every
    test on Redshift.
-#}
{% materialization test, adapter='duckdb' %}
    {%- if should_store_failures() -%}
        {{ return(dbt.materialization_test_default()) }}
    {%- endif -%}
    {%- set sql_header = config.get('sql_header') if flags.REQUIRE_SQL_HEADER_IN_TEST_CONFIGS else none -%}
    {%- set main_sql -%}
        {%- if sql_header %}{{ sql_header }}{% endif %}
        {{ get_test_sql(
            get_limit_subquery_sql(sql, config.get('limit')),
            config.get('fail_calc'),
            config.get('warn_if'),
            config.get('error_if'),
            limit=none
        ) }}
    {%- endset -%}
    {%- set response, table = adapter.execute(main_sql, auto_begin=False, fetch=True) -%}
    {%- do store_result('main', response=response, agate_table=table) -%}
    {{ return({'relations': []}) }}
{% endmaterialization %}
