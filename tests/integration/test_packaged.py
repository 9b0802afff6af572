"""The deployables as they are deployed: built by `make package`, installed or submitted where this repository is
not on the path, and run.

* The task image's install: the wheel with its `task` extra in a fresh venv, its console scripts run from a
  folder outside the repository with `python -I` semantics (no PYTHONPATH, no working directory on the path):
  `ingest` lands a file, `build` parses the bundled dbt project for Redshift and then really tries Redshift
  (a closed port on loopback: one line and exit 2), and Spark, DuckDB and great-expectations are not there.
* The Glue job: `spark-submit --py-files retail_transform_libs.zip retail_transform.py` with Glue's own argument
  list, parsed by AWS's `getResolvedOptions` (awsglue-dev). The interpreter has the libraries Glue 5.0 provides
  at AWS's versions (pandas, numpy, pyarrow, ...; infra/glue-5.0-provided.txt), the job's wheelhouse
  (great-expectations and what it needs) installed over them as the job installs it, with pip `--no-index`,
  pyspark and awsglue, and nothing of this repository; only the JVM side of `GlueContext`, which needs Glue's
  jars, is stood in for.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest

from orchestration import rehearsal
from retail_core import layout

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def _normalize(name: str) -> str:
    """PEP 503's name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(path: Path) -> dict[str, str]:
    """{normalized name: version} of a file of ``name==version`` lines."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return {_normalize(line.split("==")[0]): line.split("==")[1] for line in lines if line}


LOCK = _pins(REPO / "constraints.txt")
GLUE_PROVIDES = _pins(REPO / "infra" / "glue-5.0-provided.txt")
DAY = "2024-01-02"
DATE = dt.date.fromisoformat(DAY)
CSV = (
    "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
    "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,12/1/2010 8:26,2.55,17850.0,United Kingdom\n"
    "536365,71053,WHITE METAL LANTERN,6,12/1/2010 8:26,3.39,17850.0,United Kingdom\n"
    "536366,22633,HAND WARMER UNION JACK,6,12/1/2010 8:28,1.85,,United Kingdom\n"
    "C536379,D,Discount,-1,12/1/2010 9:41,27.50,14527.0,United Kingdom\n"
)


def _clean_env(**extra: str) -> dict[str, str]:
    """This machine's environment less anything that would put the repository on a Python path."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "RETAIL_", "DBT_"))
    }
    return {**env, "PYTHONNOUSERSITE": "1", **extra}


def test_package_writes_the_wheel_the_glue_script_and_a_zip_of_core_and_transform_only(dist: Path) -> None:
    manifest = json.loads((dist / "MANIFEST.json").read_text(encoding="utf-8"))
    assert (dist / manifest["wheel"]["file"]).is_file()
    assert (dist / "glue" / "retail_transform.py").read_bytes() == (
        REPO / "glue" / "retail_transform.py"
    ).read_bytes()
    with zipfile.ZipFile(dist / "glue" / "retail_transform_libs.zip") as zf:
        names = zf.namelist()
    assert names == manifest["glue_libs"]["members"]
    assert {n.split("/")[0] for n in names} == {"retail_core", "glue"}
    assert "glue/job.py" in names and "retail_core/lake.py" in names
    assert "glue/local.py" not in names  # the laptop's JVM tuning never goes to Glue
    with zipfile.ZipFile(dist / manifest["wheel"]["file"]) as whl:
        wheel = set(whl.namelist())
    # The wheel carries the dbt project for installed pipelines, and none of the repository-only tools.
    assert "warehouse/dbt_project/dbt_project.yml" in wheel
    assert "warehouse/dbt_project/profiles.yml" in wheel
    assert any(n.startswith("warehouse/dbt_project/models/gold/") for n in wheel)
    assert not any(n.startswith(("tests/", "orchestration/node")) for n in wheel)
    assert "orchestration/local_run.py" not in wheel


# --- the task image's install ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def task_venv(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel and its `task` extra, from the lock: what the Dockerfile installs (with uv, as
    the rehearsal installs it; the first test below checks that constraints.txt pins every package it took, so
    the Dockerfile's pip takes the same)."""
    venv = tmp_path_factory.mktemp("task") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    wheel = next(dist.glob("online_retail_pipeline-*.whl"))
    done = subprocess.run(
        rehearsal.task_install_command(venv / "bin" / "python", f"{wheel}[task]"),
        capture_output=True,
        text=True,
        timeout=900,
        env=_clean_env(),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return venv


def _task(venv: Path, cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -I -m orchestration.entrypoint ARGS`: what the image's `retail-pipeline-task` runs, isolated."""
    return subprocess.run(
        [str(venv / "bin" / "python"), "-I", "-m", "orchestration.entrypoint", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env=_clean_env(PATH=f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}", HOME=str(cwd), **env),
    )


def test_the_task_install_has_no_spark_duckdb_or_great_expectations(task_venv: Path, tmp_path: Path) -> None:
    probe = (
        "import importlib.util as u, sys; "
        "print(sorted(m for m in ('pyspark', 'duckdb', 'great_expectations', 'pandas') if u.find_spec(m))); "
        "import retail_core, warehouse.project as p; print(retail_core.__file__); print(p.PROJECT_DIR)"
    )
    done = subprocess.run(
        [str(task_venv / "bin" / "python"), "-I", "-c", probe], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    missing, core, project = done.stdout.splitlines()
    assert missing == "[]"
    # Every package is pinned, at the version installed: pip (the Dockerfile) and uv (these tests) then install
    # the same set. The installers' own (pip, from the venv) and the wheel itself are not in constraints.txt.
    installed = _distributions(task_venv / "bin" / "python")
    unpinned = {
        name: version
        for name, version in installed.items()
        if LOCK.get(name) != version and name not in ("pip", "setuptools", "online-retail-pipeline")
    }
    assert unpinned == {}, f"pin these in constraints.txt: {unpinned}"
    assert {"dbt-core", "dbt-redshift", "boto3", "kaggle"} <= set(installed)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(task_venv)}))
    assert Path(core).is_relative_to(site) and not Path(core).is_relative_to(REPO)
    assert Path(project) == site / "warehouse" / "dbt_project"
    for script in ("retail-pipeline", "retail-pipeline-task"):
        assert (task_venv / "bin" / script).is_file()
    # The console script is the entry point that sets the collector for a batch (retail_core/gc_policy.py).
    scripts = subprocess.run(
        [
            str(task_venv / "bin" / "python"),
            "-I",
            "-c",
            "from importlib.metadata import entry_points; "
            "print(entry_points(group='console_scripts')['retail-pipeline'].value)",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert scripts.stdout.strip() == "retail_pipeline.cli:console", scripts.stderr


def test_the_task_entrypoint_runs_ingest_and_build_as_installed(task_venv: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    lake = tmp_path / "lake"
    (work / "export.csv").write_text(CSV, encoding="utf-8")
    env = {"RETAIL_LAKE": str(lake), "RETAIL_RUN_ID": "run-task-1", "RETAIL_METRICS": "lake"}

    for command in ("ingest", "build"):
        helped = _task(task_venv, work, command, "--help", **env)
        assert helped.returncode == 0, helped.stderr
        assert f"usage: retail-pipeline {command}" in helped.stdout

    ingested = _task(task_venv, work, "ingest", "--path", "export.csv", "--ingest-date", DAY, **env)
    assert ingested.returncode == 0, ingested.stderr
    manifest = json.loads((lake / layout.raw_manifest_key(DATE)).read_text(encoding="utf-8"))
    assert (manifest["rows"], manifest["run_id"]) == (4, "run-task-1")

    dbt_env = {
        **env,
        "RETAIL_DBT_TARGET": "prod",
        "DBT_TARGET_PATH": str(tmp_path / "dbt" / "target"),
        "DBT_LOG_PATH": str(tmp_path / "dbt" / "logs"),
    }
    parsed = _task(task_venv, work, "build", "--target", "prod", "--parse-only", **dbt_env)
    assert parsed.returncode == 0, parsed.stderr[-3000:]
    shipped = lake / layout.ARTIFACTS_ZONE / layout.DATASET / "run_id=run-task-1" / "manifest.json"
    dbt_manifest = json.loads(shipped.read_text(encoding="utf-8"))
    assert "model.retail.sales_transactions" in dbt_manifest["nodes"]
    assert dbt_manifest["metadata"]["adapter_type"] == "redshift"

    # A real build goes to Redshift: here a closed port on loopback, which fails in one line, not a traceback, as a
    # service that failed (exit 4).
    built = _task(
        task_venv,
        work,
        "build",
        "--target",
        "prod",
        **{**dbt_env, "RETAIL_RUN_ID": "run-task-2", "REDSHIFT_HOST": "127.0.0.1", "REDSHIFT_PORT": "9"},
        REDSHIFT_USER="pipeline",
        REDSHIFT_PASSWORD="not-a-secret",
    )
    assert built.returncode == 4, built.stderr[-3000:]
    assert "Traceback" not in built.stderr
    error = next(
        line for line in built.stderr.splitlines() if line.startswith("retail-pipeline build: error:")
    )
    assert "the warehouse could not be reached: Database Error" in error and "(dbt target prod)" in error
    assert "not-a-secret" not in built.stdout + built.stderr
    runs = (
        (lake / layout.RUNS_ZONE / layout.DATASET / "run_log.jsonl").read_text(encoding="utf-8").splitlines()
    )
    stages = [(r["run_id"], r["stage"], r["figures"]["success"]) for r in map(json.loads, runs)]
    assert ("run-task-1", "ingest", 1) in stages and ("run-task-2", "build", 0) in stages


# --- the Glue job ----------------------------------------------------------------------------------------

# Glue's JVM side is stood in for as the rehearsal does it (orchestration/rehearsal.py says how).
GLUE_STANDIN = rehearsal.GLUE_STANDIN


@dataclasses.dataclass(frozen=True)
class GluePython:
    """The Glue job's interpreter, and what installing the wheelhouse into it did."""

    python: Path
    before: dict[str, str]  # {distribution: version} with only Glue's own libraries
    after: dict[str, str]  # ... once the wheelhouse was installed over them
    install_output: str


@pytest.fixture(scope="module")
def glue_python(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> GluePython:
    """An interpreter as a Glue 5.0 job's, and nothing of this repository: a venv with Glue's libraries at AWS's
    versions (infra/glue-5.0-provided.txt: its pip, pandas, numpy, pyarrow and every one the wheelhouse relies
    on, from the index), then dist/'s wheelhouse installed as the job installs it (Glue's pip, --no-index);
    pyspark, py4j and awsglue (Spark's and AWS's, not pip's on Glue) are this venv's, linked in by a .pth."""
    wheelhouse = json.loads((dist / "MANIFEST.json").read_text(encoding="utf-8"))["glue_wheelhouse"]
    venv = tmp_path_factory.mktemp("glue") / "python"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    glue_side = {n: GLUE_PROVIDES[n] for n in ("pip", "numpy", "pandas", "pyarrow")} | wheelhouse[
        "glue_provides"
    ]
    pins = [f"{name}=={version}" for name, version in sorted(glue_side.items())]
    # Glue's side is the stage the job's install runs on, not what is tested: uv lays it down (pip took 20-30 s of
    # CPU here), compiled to bytecode as Glue's image has it.
    provided = subprocess.run(
        [sys.executable, "-m", "uv", "pip", "install", "--quiet", "--python", str(python),
         "--only-binary", ":all:", "--compile-bytecode", *pins],
        capture_output=True,
        text=True,
        timeout=900,
        env=_clean_env(),
    )  # fmt: skip
    assert provided.returncode == 0, provided.stderr[-3000:]
    before = _distributions(python)
    # Glue's pip (23.0.1), no index and no pip configuration: the wheelhouse only.
    offline = ["--isolated", "install", "--no-index", "--find-links", str(dist / "glue" / "wheelhouse")]
    installed = subprocess.run(
        [str(python), "-m", "pip", *offline, "-r", str(dist / wheelhouse["requirements"])],
        capture_output=True,
        text=True,
        timeout=300,
        env=_clean_env(PIP_DISABLE_PIP_VERSION_CHECK="1"),
    )
    assert installed.returncode == 0, installed.stdout[-2000:] + installed.stderr[-3000:]
    after = _distributions(python)
    runtime = venv / "glue-runtime"
    runtime.mkdir()
    for name in ("pyspark", "py4j", "awsglue"):
        (runtime / name).symlink_to(Path(sysconfig.get_path("purelib")) / name)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(venv)}))
    (site / "glue_runtime.pth").write_text(f"{runtime}\n", encoding="utf-8")
    (site / "sitecustomize.py").write_text(textwrap.dedent(GLUE_STANDIN), encoding="utf-8")
    return GluePython(python, before, after, installed.stdout)


def _distributions(python: Path) -> dict[str, str]:
    """{normalized name: version} of every distribution ``python`` sees."""
    probe = "import importlib.metadata as m, json; print(json.dumps([(d.metadata['Name'], d.version) for d in m.distributions()]))"
    done = subprocess.run([str(python), "-I", "-c", probe], capture_output=True, text=True, check=True)
    return {_normalize(name): version for name, version in json.loads(done.stdout)}


def test_the_wheelhouse_installs_offline_over_glues_own_libraries_and_replaces_none(
    dist: Path, glue_python: GluePython
) -> None:
    wheelhouse = json.loads((dist / "MANIFEST.json").read_text(encoding="utf-8"))["glue_wheelhouse"]
    before, after = glue_python.before, glue_python.after
    assert {n: before[n] for n in ("pip", "numpy", "pandas", "pyarrow")} == {
        n: GLUE_PROVIDES[n] for n in ("pip", "numpy", "pandas", "pyarrow")
    }
    assert "Uninstalling" not in glue_python.install_output
    assert {n: after.get(n) for n in before} == before  # nothing Glue had was replaced or removed
    added = {n: after[n] for n in after.keys() - before.keys()}
    assert added == {f["name"]: f["version"] for f in wheelhouse["files"]}
    checked = subprocess.run(
        [str(glue_python.python), "-m", "pip", "check"], capture_output=True, text=True, env=_clean_env()
    )
    assert checked.returncode == 0, checked.stdout


def test_the_glue_interpreter_has_glues_libraries_but_not_this_repository(
    glue_python: GluePython, tmp_path
) -> None:
    probe = (
        "import great_expectations as gx, numpy, pandas, pyarrow, pyspark, awsglue.utils\n"
        "print(gx.__version__, numpy.__version__, pandas.__version__, pyarrow.__version__)\n"
        "import glue"
    )
    done = subprocess.run(
        [str(glue_python.python), "-c", probe],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=_clean_env(GLUE_STANDIN_LOG=str(tmp_path / "log")),
    )
    assert "No module named 'glue'" in done.stderr, done.stderr[-2000:]
    expected = [GLUE_PROVIDES[n] for n in ("numpy", "pandas", "pyarrow")]
    assert done.stdout.split() == [LOCK["great-expectations"], *expected]


def test_the_glue_job_runs_from_dist_with_glues_arguments(
    dist: Path, glue_python: GluePython, tmp_path: Path
) -> None:
    lake = tmp_path / "lake"
    raw = lake / layout.raw_key(DATE)
    raw.parent.mkdir(parents=True)
    raw.write_text(CSV, encoding="utf-8")
    (lake / layout.raw_manifest_key(DATE)).write_text(
        json.dumps({"source": "file", "rows": 4}), encoding="utf-8"
    )
    standin_log = tmp_path / "glue_standin.jsonl"
    spark_home = Path(sysconfig.get_path("purelib")) / "pyspark"
    glue_args = [
        "--JOB_ID", "j_0123", "--JOB_RUN_ID", "jr_0123", "--job-bookmark-option", "job-bookmark-disable",
        "--TempDir", f"s3://aws-glue-temporary/{tmp_path.name}", "--JOB_NAME", "retail-transform",
    ]  # fmt: skip
    job_args = ["--lake", str(lake), "--ingest_date", DAY, "--run_id", "run-glue-1", "--output_files", "1"]
    job_args += ["--max_quarantine_ratio", "0.5"]  # 1 of 4 lines is a cancellation
    done = subprocess.run(
        [
            str(spark_home / "bin" / "spark-submit"),
            "--master",
            "local[2]",
            "--driver-memory",
            "1g",
            "--conf",
            "spark.ui.enabled=false",
            "--conf",
            "spark.driver.host=127.0.0.1",
            "--py-files",
            str(dist / "glue" / "retail_transform_libs.zip"),
            str(dist / "glue" / "retail_transform.py"),
            *glue_args,
            *job_args,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env=_clean_env(
            SPARK_HOME=str(spark_home),
            PYSPARK_PYTHON=str(glue_python.python),
            PYSPARK_DRIVER_PYTHON=str(glue_python.python),
            SPARK_LOCAL_IP="127.0.0.1",
            GLUE_STANDIN_LOG=str(standin_log),
            RETAIL_METRICS="lake",
        ),
    )
    assert done.returncode == 0, "\n".join(line for line in done.stderr.splitlines() if " INFO " not in line)[
        -4000:
    ]
    report = json.loads((lake / layout.run_report_key(DATE)).read_text(encoding="utf-8"))
    assert (report["status"], report["engine"], report["run_id"]) == ("succeeded", "glue", "run-glue-1")
    # The cancellation is a return: kept, in returns/, neither a sale nor a reject.
    assert (report["rows_in"], report["rows_clean"], report["rows_returns"], report["rows_quarantined"]) == (
        4,
        3,
        1,
        0,
    )
    # Published as the packaged code does it: the one part file under the run's generation, named by the manifest.
    manifest = json.loads(
        (lake / layout.processed_prefix(DATE) / layout.MANIFEST_NAME).read_text(encoding="utf-8")
    )
    assert [f["name"] for f in manifest["files"]] == [f"part-00000-{report['generation']}.tsv"]
    assert (manifest["run_id"], manifest["rows"]) == ("run-glue-1", 3)
    events = [json.loads(line) for line in standin_log.read_text(encoding="utf-8").splitlines()]
    init, commit = events
    assert init["init"] == "retail-transform" and commit == {"commit": True}
    # getResolvedOptions parsed Glue's arguments and ours.
    assert (
        init["args"]["JOB_RUN_ID"] == "jr_0123"
        and init["args"]["job_bookmark_option"] == "job-bookmark-disable"
    )
    assert (init["args"]["lake"], init["args"]["ingest_date"]) == (str(lake), DAY)
