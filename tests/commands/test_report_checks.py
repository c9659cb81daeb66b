"""`bertcnn report` is honest: non-zero when it checked less than asked, says what it compared on."""

from __future__ import annotations

import json

import pytest

from parity.commands import main
from parity.commands.builds import gpu_unavailable
from parity.io.checkpoint import save_checkpoint
from tests.train_helpers import tiny_checkpoint


@pytest.fixture
def ck(tmp_path):
    tiny_checkpoint(tmp_path / "ck")
    return tmp_path / "ck"


def test_dtype_both_is_what_the_help_offers(ck, capsys):
    assert main(["report", "--checkpoint", str(ck), "--dtype", "both"]) == 0
    out = capsys.readouterr().out
    assert "forward float32 on cpu" in out and "forward float64 on cpu" in out


def test_without_a_tokenizer_it_says_it_compared_seeded_random_ids(tmp_path, capsys):
    from parity.config import BertCnnConfig
    from tests.conftest import TINY, random_tensors

    config = BertCnnConfig(**TINY)
    save_checkpoint(tmp_path / "bare", config, random_tensors(config))
    assert main(["report", "--checkpoint", str(tmp_path / "bare"), "--dtype", "float32"]) == 0
    out = capsys.readouterr().out
    assert "rows of seeded random token ids" in out and "has no tokenizer" in out and " texts," not in out


@pytest.mark.skipif(gpu_unavailable("torch") is None, reason="a GPU is present: the no-GPU path does not apply")
def test_a_device_it_could_not_check_makes_the_run_incomplete(ck, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert (
        main(["report", "--checkpoint", str(ck), "--dtype", "float32", "--device", "all", "--json-out", str(out)]) == 3
    )
    text = capsys.readouterr().out
    assert "NOT CHECKED: cuda" in text and "PARITY INCOMPLETE" in text and "PARITY OK" not in text
    doc = json.loads(out.read_text())
    assert doc["passed"] is False and doc["complete"] is False and doc["results"]


def test_json_goes_to_stdout_and_the_tables_to_stderr(ck, capsys):
    assert main(["report", "--checkpoint", str(ck), "--dtype", "float64", "--json"]) == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert doc["passed"] is True and doc["results"][0]["dtype"] == "float64"
    assert "PARITY OK" in err and "PARITY OK" not in out


def test_json_with_a_file_name_is_refused_with_the_new_option(ck, tmp_path, capsys):
    assert main(["report", "--checkpoint", str(ck), "--json", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err
    assert "--json-out FILE" in err and "Received: TEXT" in err and not (tmp_path / "r.json").exists()


@pytest.mark.parametrize("flag", ["--json-out", "--plot"])
def test_outputs_are_checked_before_any_work(ck, tmp_path, flag, capsys):
    weights = ck / "model.safetensors"
    before = weights.read_bytes()
    assert main(["report", "--checkpoint", str(ck), flag, str(weights)]) == 2  # an input
    assert "must not be, contain or lie inside an input" in capsys.readouterr().err
    assert weights.read_bytes() == before
    kept = tmp_path / "kept.out"
    kept.write_text("mine")
    assert main(["report", "--checkpoint", str(ck), flag, str(kept)]) == 2
    err = capsys.readouterr().err
    assert "already exists; pass --force" in err and kept.read_text() == "mine"
    assert "weights:" not in capsys.readouterr().out  # nothing ran


def test_artifact_errors_print_nothing_on_stdout_first(ck, tmp_path, capsys):
    assert main(["report", "--checkpoint", str(ck), "--artifact", str(tmp_path / "notck")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "is not an export directory" in err
