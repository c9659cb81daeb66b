"""`bertcnn init` refuses what would not be a classifier, and never writes over what is not its own."""

from __future__ import annotations

import pytest

from parity.commands import main


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--num-labels", "1"], "at least 2 classes"),
        (["--labels", "pos"], "at least 2 classes"),
        (["--kernel-sizes", "3,,4"], "expected comma-separated positive integers like 3,4,5. Received: '3,,4'"),
        (["--kernel-sizes", "3,0"], "expected comma-separated positive integers"),
        (["--num-filters", "0"], "expected a positive integer. Received: '0'"),
    ],
)
def test_a_head_that_is_not_a_classifier_is_refused(args, said, tmp_path, capsys):
    code = None
    try:
        code = main(["init", str(tmp_path / "ck"), *args])
    except SystemExit as e:  # argparse's own type errors
        code = e.code
    assert code == 2 and said in capsys.readouterr().err
    assert not (tmp_path / "ck").exists()


def test_a_file_or_a_folder_of_somebody_elses_is_refused_even_with_force(tmp_path, capsys):
    texts = tmp_path / "texts.txt"
    texts.write_text("hello\n")
    assert main(["init", str(texts)]) == 2
    assert "must be a folder; " in capsys.readouterr().err and texts.read_text() == "hello\n"
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "draft.tex").write_text("x")
    assert main(["init", str(thesis), "--force"]) == 2
    assert "a folder this project did not write" in capsys.readouterr().err
    assert (thesis / "draft.tex").read_text() == "x"


def test_the_current_folder_is_never_replaced(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "keep.txt").write_text("x")
    assert main(["init", ".", "--force"]) == 2
    assert "must not be the current folder" in capsys.readouterr().err and (tmp_path / "keep.txt").exists()
