"""`make rehearse` under pytest: five days of the packaged pipeline in the real state machine (orchestration/rehearsal.py),
against a dist/ built into a folder of this test's, plus the rehearsal's own refusals and its comparison."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import shutil
import zipfile
from decimal import Decimal
from pathlib import Path

import pytest

from orchestration import rehearsal

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def test_a_missing_dist_is_one_line_naming_make_package(tmp_path, capsys):
    assert rehearsal.main(["--dist", str(tmp_path / "nowhere"), "--workdir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("rehearsal: error:") and "make package" in err


def _repack(dist: Path, target: Path, member: str, data: bytes) -> Path:
    """A copy of ``dist`` whose wheel has ``member`` replaced, its MANIFEST.json hash updated to match."""
    shutil.copytree(dist, target)
    manifest = json.loads((target / "MANIFEST.json").read_text(encoding="utf-8"))
    wheel = target / manifest["wheel"]["file"]
    with zipfile.ZipFile(dist / wheel.name) as old, zipfile.ZipFile(wheel, "w") as new:
        for info in old.infolist():
            new.writestr(info, data if info.filename == member else old.read(info))
    manifest["wheel"]["sha256"] = hashlib.sha256(wheel.read_bytes()).hexdigest()
    (target / "MANIFEST.json").write_text(json.dumps(manifest), encoding="utf-8")
    return target


def test_a_dist_that_no_longer_matches_its_manifest_or_the_checkout_is_refused(dist, tmp_path, capsys):
    tampered = tmp_path / "tampered"
    shutil.copytree(dist, tampered)
    (tampered / "glue" / "retail_transform.py").write_text("# not what was packaged\n", encoding="utf-8")
    assert rehearsal.main(["--dist", str(tampered), "--workdir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "does not match its hash" in err and err.count("\n") == 1

    job = (REPO / "glue" / "job.py").read_bytes()
    stale = _repack(dist, tmp_path / "stale", "glue/job.py", job + b"\n# an older checkout\n")
    assert rehearsal.main(["--dist", str(stale), "--workdir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "is stale: glue/job.py changed since it was packaged" in err and err.count("\n") == 1


# Last of the tests that need dist/: the refusals above run right after it was built, before anything in the
# checkout can change under them.
def test_five_days_of_the_packaged_pipeline_match_the_independent_reference(dist, tmp_path, capsys):
    code = rehearsal.main(["--dist", str(dist), "--workdir", str(tmp_path / "work")])
    out, err = capsys.readouterr()
    assert code == 0, out + err[-3000:]
    rows = [line for line in out.splitlines() if line[:1].isdigit()]
    assert [row.split()[0] for row in rows] == ["1", "2", "3", "4", "5"], out
    assert "FAILED in Transform" in rows[3] and all("ok" in row.split()[-1] for row in rows), out


# --- the comparison, without running anything --------------------------------------------------------------------


def _batch(lines: dict[str, str], quarantined: int = 0, returns: int = 0) -> rehearsal.Batch:
    rows = {
        line_id: {"total_sales": total, "stock_code": f"S{line_id}", "customer_id": "", "invoice_no": "1"}
        for line_id, total in lines.items()
    }
    total = sum((Decimal(t) for t in lines.values()), Decimal(0))
    return rehearsal.Batch(len(lines) + returns + quarantined, len(lines), returns, quarantined, total, rows)


def test_the_ledger_keeps_one_batch_per_date_and_each_line_from_its_latest_delivery():
    ledger = rehearsal.Ledger(max_ratio=0.05)
    d1, d2 = dt.date(2024, 1, 1), dt.date(2024, 1, 2)
    day = lambda n, date, csv, intent: rehearsal.Day(n, date, "", csv, intent)  # noqa: E731
    first = ledger.expect(day(1, d1, b"a", "loaded"), _batch({"x": "1.000", "y": "2.000"}))
    assert first.gold == {"x": (d1, Decimal("1.000")), "y": (d1, Decimal("2.000"))}
    again = ledger.expect(day(2, d2, b"a", "noop"), _batch({"x": "1.000", "y": "2.000"}))
    assert again.kind == "noop" and again.batch is None and again.gold == first.gold
    corrected = ledger.expect(day(3, d1, b"b", "loaded"), _batch({"x": "1.000", "z": "5.000"}))
    assert set(corrected.gold) == {"x", "z"} and corrected.gold_total == Decimal("6.000")
    rejected = ledger.expect(day(4, d2, b"c", "rejected"), _batch({"w": "9.000"}, quarantined=1))
    assert rejected.outcome == "FAILED in Transform" and rejected.gold == corrected.gold
    later = ledger.expect(day(5, d2, b"d", "loaded"), _batch({"z": "5.000", "v": "1.500"}))
    assert later.gold["z"] == (d2, Decimal("5.000")) and later.latest == d2
    assert (later.gold_total, later.successes) == (Decimal("7.500"), 4)
    with pytest.raises(rehearsal.RehearsalError, match="is loaded, not rejected"):
        ledger.expect(day(6, d2, b"e", "rejected"), _batch({"u": "1.000"}))


def test_every_figure_that_differs_is_reported():
    d1 = dt.date(2024, 1, 1)
    day = rehearsal.Day(4, d1, "", b"", "rejected")
    expected = rehearsal.Expectation(
        outcome="FAILED in Transform",
        kind="rejected",
        batch=_batch({"a": "1.000"}, quarantined=2, returns=1),
        gold={"a": (d1, Decimal("1.000")), "b": (d1, Decimal("2.000"))},
        products=2,
        customers=1,
        successes=1,
    )
    same = rehearsal.Observation(
        outcome="FAILED in Transform",
        stages={"transform": {"rows_in": 4, "rows_clean": 1, "rows_returns": 1, "rows_quarantined": 2}},
        notifications=[
            {
                "Message": "Execution e failed in state Transform (ingest date 2024-01-01).",
                "MessageAttributes": {"failed_state": {"Type": "String", "Value": "Transform"}},
            }
        ],
        gold=dict(expected.gold),
        products=2,
        customers=1,
        successes=1,
        processed=[],
    )
    assert rehearsal.compare(day, expected, same, before=same) == []
    worse = dataclasses.replace(
        same,
        outcome="SUCCEEDED",
        stages={"transform": {"rows_in": 4, "rows_clean": 2, "rows_returns": 0, "rows_quarantined": 2}},
        notifications=[],
        gold={"a": (d1, Decimal("1.000")), "c": (d1, Decimal("2.500"))},
        successes=2,
    )
    problems = rehearsal.compare(day, expected, worse, before=same)
    for phrase in (
        "outcome: expected FAILED in Transform, got SUCCEEDED",
        "transform rows_clean: expected 1, got 2",
        "transform rows_returns: expected 1, got 0",
        "SNS messages naming the failed state: expected ['Transform'], got []",
        "CloudWatch pipeline successes so far: expected 1, got 2",
        "gold changed on a day that must leave it as it was",
        "gold Σ total_sales: expected 3.000, got 3.500",
        "gold lines: 1 expected line(s) missing, 1 unexpected",
    ):
        assert phrase in problems, problems
