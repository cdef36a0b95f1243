"""`make test` runs the suite on pytest-xdist's workers unless its arguments say otherwise."""

import pytest

from devtools.local import xdist_chosen


@pytest.mark.parametrize(
    "args",
    [[], ["tests/config"], ["-k", "make_run"], ["-x", "--durations=10"], ["-p", "no:cacheprovider"]],
)
def test_workers_are_added_when_the_arguments_do_not_choose(args):
    assert not xdist_chosen(args)


@pytest.mark.parametrize(
    "args",
    [
        ["-n", "0"],
        ["-n0"],
        ["-nauto"],
        ["--numprocesses=4"],
        ["--dist", "load"],
        ["--dist=loadgroup"],
        ["tests/config", "-p", "no:xdist"],
        ["-pno:xdist"],
    ],
)
def test_arguments_that_choose_are_left_alone(args):
    assert xdist_chosen(args)
