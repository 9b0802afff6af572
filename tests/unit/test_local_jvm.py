"""The local JVM's surroundings: a private scratch folder per Spark, and a class archive that steps aside."""

from __future__ import annotations

import argparse
import os
import stat
import subprocess
import sys
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
        local.build_class_archive()


def test_an_existing_class_archive_is_not_built_again(tmp_path, monkeypatch):
    archive = tmp_path / "spark.jsa"
    archive.write_bytes(b"x")
    monkeypatch.delenv("RETAIL_JVM_CLASS_ARCHIVE", raising=False)
    monkeypatch.setattr(local, "class_archive_path", lambda: archive)
    monkeypatch.setattr(local, "start_local", lambda *a, **k: pytest.fail("Spark started"))
    assert local.build_class_archive() == archive


def test_a_recorded_class_archive_lands_only_when_kept_whole_from_a_clean_exit(tmp_path):
    path = tmp_path / "spark.jsa"
    for keep, clean, content in [(False, True, b"x"), (True, False, b"x"), (True, True, b"")]:
        recording = local.ClassRecording(path, tmp_path / "spark.jsa.1-a.tmp", keep=keep)
        recording.tmp.write_bytes(content)
        recording.land(clean)
        assert not path.exists() and not recording.tmp.exists(), (keep, clean, content)
    recording = local.ClassRecording(path, tmp_path / "spark.jsa.1-a.tmp", keep=True)
    recording.tmp.write_bytes(b"archive")
    recording.land(True)
    assert path.read_bytes() == b"archive"
    assert list(tmp_path.iterdir()) == [path]


def test_a_recording_starts_only_without_an_archive_and_clears_dead_processes_leftovers(
    tmp_path, monkeypatch
):
    monkeypatch.delenv("RETAIL_JVM_CLASS_ARCHIVE", raising=False)
    path = tmp_path / "var" / "spark.jsa"
    monkeypatch.setattr(local, "class_archive_path", lambda: path)
    first = local._class_recording()
    assert first is not None and first.path == path and not first.keep
    assert first.tmp.parent == path.parent and first.tmp.name.startswith(f"spark.jsa.{os.getpid()}-")
    dead = path.with_name("spark.jsa.999999999-0badc0de.tmp")  # above any pid_max: no such process
    live = path.with_name(f"spark.jsa.{os.getpid()}-0badc0de.tmp")
    for leftover in (dead, live):
        leftover.write_bytes(b"half")
    second = local._class_recording()
    assert second is not None and second.tmp != first.tmp
    assert not dead.exists() and live.exists()
    assert local._class_recording(("-javaagent:/a.jar",)) is None
    path.write_bytes(b"archive")
    assert local._class_recording() is None


def test_the_class_archive_key_changes_with_pysparks_jars(tmp_path, monkeypatch):
    """The JVM maps an archive only over the jars it was recorded with: reinstalled jars need a new one."""
    import pyspark

    jars = tmp_path / "pyspark" / "jars"
    jars.mkdir(parents=True)
    monkeypatch.setattr(pyspark, "__file__", str(jars.parent / "__init__.py"))
    before = local.class_archive_path()
    os.utime(jars, ns=(1, jars.stat().st_mtime_ns + 10**9))
    after = local.class_archive_path()
    assert before is not None and after is not None
    assert before.parent == after.parent and before.name != after.name


# A stand-in for the JVM: it writes its "archive" as it exits, once its stdin closes (as a recording JVM does).
_FAKE_JVM = "import sys, time; sys.stdin.read(); time.sleep(0.3); open(sys.argv[1], 'wb').write(b'archive')"


class _Session:
    stopped = False

    def stop(self) -> None:
        self.stopped = True


@pytest.mark.parametrize("kept", [True, False])
def test_stopping_a_recording_spark_lands_the_archive_after_success_and_kills_the_jvm_otherwise(
    tmp_path, monkeypatch, kept
):
    recording = local.ClassRecording(tmp_path / "spark.jsa", tmp_path / "spark.jsa.1-a.tmp")
    jvm = subprocess.Popen([sys.executable, "-c", _FAKE_JVM, str(recording.tmp)], stdin=subprocess.PIPE)

    def detach():
        jvm.stdin.close()
        return jvm

    monkeypatch.setattr(local, "_detach_jvm", detach)
    scratch = local.scratch_dir()
    session = _Session()
    stop = local.LocalStop(session, scratch, recording)
    if kept:
        stop.keep_recording()
    stop()
    stop.join()
    assert session.stopped and jvm.returncode is not None
    assert not Path(scratch).exists()
    assert recording.path.exists() is kept
    assert not recording.tmp.exists()
    if kept:
        assert jvm.returncode == 0 and stop.landing is not None
    else:
        assert jvm.returncode < 0  # killed before it could write a half-run archive


@pytest.mark.parametrize(
    "text",
    ["2024-01-31\n", "20240131", "2024-01-31T00:00", " 2024-01-31", "2024-1-31", "0202-01-31", "1899-12-31"],
)
def test_an_ingest_date_is_exactly_yyyy_mm_dd_from_1900(text):
    """Spark's date literal fails with a Java stack trace on year 202 (a typo for 2024): refused in one line."""
    with pytest.raises(ValueError):
        layout.ingest_date_from_text(text)
    with pytest.raises(argparse.ArgumentTypeError, match=r"before 1900-01-01|use YYYY-MM-DD"):
        parse_date(text)
    assert str(layout.ingest_date_from_text("2024-01-31")) == "2024-01-31"
    assert str(layout.ingest_date_from_text("1900-01-01")) == "1900-01-01"


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
