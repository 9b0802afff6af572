"""The local JVM's surroundings: a private scratch folder per Spark, and a class archive that steps aside."""

from __future__ import annotations

import argparse
import os
import stat
import tempfile
from pathlib import Path

import pytest

from glue import local, retail_transform
from retail_core import layout
from retail_pipeline.commands.ingest import parse_date


def test_each_spark_gets_its_own_private_scratch_folder_in_the_temp_dir():
    first, second = local.scratch_dir(), local.scratch_dir()
    try:
        assert first != second
        for folder in (first, second):
            info = os.stat(folder)
            assert Path(folder).parent == Path(tempfile.gettempdir())
            assert Path(folder).name.startswith("retail-spark-")
            assert stat.S_IMODE(info.st_mode) == 0o700
            assert info.st_uid == os.getuid()
    finally:
        for folder in (first, second):
            local.remove_scratch(folder)
    assert not Path(first).exists() and not Path(second).exists()


def test_a_crashed_jvms_scratch_folder_is_kept_for_its_report(caplog):
    folder = local.scratch_dir()
    report = Path(folder) / "hs_err_pid42.log"
    report.write_text("crash")
    try:
        local.remove_scratch(folder)
        assert report.exists()
        assert str(report) in caplog.text
    finally:
        report.unlink()
        local.remove_scratch(folder)


@pytest.mark.parametrize("variable", local.JVM_OPTION_VARIABLES)
@pytest.mark.parametrize(
    "option",
    [
        "-javaagent:/opt/agent.jar",
        "-agentlib:jdwp=transport=dt_socket",
        "-agentpath:/opt/libprofiler.so",
        "-XX:StartFlightRecording=duration=30s",
        "-XX:+FlightRecorder",
    ],
)
def test_an_agent_or_flight_recorder_in_the_environment_turns_the_class_archive_off(variable, option):
    assert variable in local.class_archive_off({variable: f"-Xmx1g {option}"})


def test_the_class_archive_is_off_with_its_switch_or_an_agent_in_the_driver_options(tmp_path, monkeypatch):
    archive = tmp_path / "spark.jsa"
    archive.write_bytes(b"x")
    monkeypatch.setattr(local, "class_archive_path", lambda: archive)
    assert local.class_archive_options({}) == [f"-XX:SharedArchiveFile={archive}", "-Xlog:cds*=off"]
    assert local.class_archive_options({"JAVA_TOOL_OPTIONS": "-Xss4m", "RETAIL_JVM_CLASS_ARCHIVE": "1"}) != []
    for off in ("0", "false", "OFF", "no"):
        assert local.class_archive_options({"RETAIL_JVM_CLASS_ARCHIVE": off}) == []
    assert local.class_archive_options({}, extra_java_options=("-javaagent:/a.jar",)) == []


def test_the_class_archive_is_not_built_when_it_is_switched_off(monkeypatch):
    monkeypatch.setenv("RETAIL_JVM_CLASS_ARCHIVE", "0")
    monkeypatch.setattr(local, "start_local", lambda *a, **k: pytest.fail("Spark started"))
    with pytest.raises(RuntimeError, match="RETAIL_JVM_CLASS_ARCHIVE"):
        local.build_class_archive(Path("/nonexistent/spark.jsa"))


@pytest.mark.parametrize("text", ["2024-01-31\n", "20240131", "2024-01-31T00:00", " 2024-01-31", "2024-1-31"])
def test_an_ingest_date_is_exactly_yyyy_mm_dd(text):
    with pytest.raises(ValueError):
        layout.ingest_date_from_text(text)
    with pytest.raises(argparse.ArgumentTypeError):
        parse_date(text)
    assert str(layout.ingest_date_from_text("2024-01-31")) == "2024-01-31"


def test_the_glue_script_refuses_a_bad_run_id_or_sink_before_starting_spark(monkeypatch, caplog):
    monkeypatch.setattr(retail_transform.runtime, "start", lambda argv: pytest.fail("Spark started"))
    monkeypatch.setenv("RETAIL_RUN_ID", "a/b")
    assert retail_transform.main(["retail_transform.py", "--lake", "/nonexistent"]) == 2
    assert "bad run id" in caplog.text
    monkeypatch.delenv("RETAIL_RUN_ID")
    monkeypatch.setenv("RETAIL_METRICS", "statsd")
    assert retail_transform.main(["retail_transform.py", "--lake", "/nonexistent"]) == 2
    assert "RETAIL_METRICS" in caplog.text


class _NoSpark:
    engine = "local"

    def stop(self) -> None:
        pass


@pytest.mark.parametrize(
    ("argument", "message"),
    [(["--run_id", "x y"], "--run_id"), (["--ingest_date", "2024-01-31\n"], "--ingest_date")],
)
def test_the_glue_script_refuses_bad_job_arguments_before_reading_the_lake(
    monkeypatch, caplog, argument, message
):
    monkeypatch.delenv("RETAIL_RUN_ID", raising=False)
    monkeypatch.delenv("RETAIL_METRICS", raising=False)
    monkeypatch.setattr(retail_transform.runtime, "start", lambda argv: _NoSpark())
    monkeypatch.setattr(retail_transform, "open_lake", lambda settings: pytest.fail("the lake was opened"))
    assert retail_transform.main(["retail_transform.py", "--lake", "/nonexistent", *argument]) == 2
    assert message in caplog.text
