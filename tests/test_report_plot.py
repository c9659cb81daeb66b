"""`--plot`: a PNG with one line per run, drawn from a real report."""

from __future__ import annotations

import pytest

from parity.commands import main


def test_plot_writes_a_png_per_report(tiny_ck, tmp_path, capsys):
    pytest.importorskip("matplotlib", reason="--plot needs the `plot` extra: pip install 'bertcnn[plot]'")
    png = tmp_path / "taps.png"
    assert main(["report", "--checkpoint", str(tiny_ck), "--plot", str(png)]) == 0
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert f"wrote {png}" in capsys.readouterr().out


def test_plot_of_nothing_is_refused():
    pytest.importorskip("matplotlib")
    from parity.plot import plot_runs

    with pytest.raises(ValueError, match="Received: 0 runs"):
        plot_runs([], "x.png")
