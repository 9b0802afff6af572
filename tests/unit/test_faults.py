"""The fault hook itself: what RETAIL_FAULT accepts, and that an armed point fires on the visit asked for."""

import errno

import pytest

from retail_core import faults, metrics
from retail_core.errors import InputError


def test_every_point_is_declared_and_an_undeclared_one_is_a_bug():
    with pytest.raises(KeyError):
        faults.point("promote.nowhere")
    faults.point("promote.after_part")  # declared, unarmed: nothing happens


@pytest.mark.parametrize(
    "spec", ["promote.after_part", "nowhere=kill", "promote.after_part=explode", "promote.after_part=kill@0"]
)
def test_a_malformed_setting_is_refused_before_any_work(spec):
    with pytest.raises(InputError, match="RETAIL_FAULT"):
        metrics.check_env({faults.ENV: spec})


def test_an_armed_point_fires_on_the_visit_asked_for():
    with faults.armed("promote.after_part", "enospc", hit=2):
        faults.point("promote.after_part")
        with pytest.raises(OSError) as info:
            faults.point("promote.after_part")
        assert info.value.errno == errno.ENOSPC and "promote.after_part" in str(info.value)
    faults.point("promote.after_part")  # disarmed with the block


def test_the_environment_arms_points_for_a_child_process(monkeypatch):
    monkeypatch.setenv(faults.ENV, "lease.acquired=eio,promote.after_sweep=enospc@3")
    assert faults.parse("lease.acquired=eio,promote.after_sweep=enospc@3") == [
        faults.Fault("lease.acquired", "eio", 1),
        faults.Fault("promote.after_sweep", "enospc", 3),
    ]
    with pytest.raises(OSError) as info:
        faults.point("lease.acquired")
    assert info.value.errno == errno.EIO
