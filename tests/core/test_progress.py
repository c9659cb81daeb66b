"""`counter`: the progress bar counts up to the total and ends its line; disabled, there is none."""

from parity.progress import counter
from tests.helpers import Terminal


def test_progress_bar_counts_up_and_ends_the_line(monkeypatch):
    out = Terminal()
    monkeypatch.setattr("sys.stderr", out)
    p = counter(10, unit="text")
    p(4, 10)
    p(10, 10)
    text = out.getvalue()
    assert "10/10" in text and text.endswith("\n")
    assert counter(10, unit="text", enabled=False) is None
