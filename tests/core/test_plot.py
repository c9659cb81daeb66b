"""`plot_runs`: nothing to draw is refused (the report's `--plot` is in tests/commands/test_report.py)."""

import pytest


def test_plot_of_nothing_is_refused():
    pytest.importorskip("matplotlib")
    from parity.plot import plot_runs

    with pytest.raises(ValueError, match="Received: 0 runs"):
        plot_runs([], "x.png")
