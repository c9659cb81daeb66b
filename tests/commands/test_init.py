"""`bertcnn init`: a canonical checkpoint with its tokenizer from a backbone, label names, refusals, help.

`--backbone` also takes a Hugging Face sequence classifier: its extra tensors are reported, not kept.
"""

import json

import pytest
from transformers import BertConfig

from parity.commands import main
from parity.config import BertCnnConfig
from parity.io.checkpoint import load_checkpoint
from tests.helpers import TINY, tiny_hf_bert


def test_init_writes_a_canonical_checkpoint_with_tokenizer(minilm_ck):
    config = json.loads((minilm_ck / "config.json").read_text())
    assert (config["num_labels"], config["kernel_sizes"]) == (3, [2, 3])
    assert (minilm_ck / "model.safetensors").is_file() and (minilm_ck / "tokenizer.json").is_file()


def test_init_refuses_to_overwrite(minilm_ck, capsys):
    assert main(["init", str(minilm_ck)]) == 2
    assert "--force" in capsys.readouterr().err


def test_init_labels_names_the_classes_and_refuses_a_conflicting_count(tmp_path, embedded_dir, capsys):
    d = tmp_path / "ck"
    argv = ["init", str(d), "--backbone", str(embedded_dir), "--kernel-sizes", "2", "--num-filters", "3"]
    assert main([*argv, "--labels", "neg, pos"]) == 0
    config = json.loads((d / "config.json").read_text())
    assert (config["num_labels"], config["id2label"], config["label2id"]) == (2, {"0": "neg", "1": "pos"}, {
        "neg": 0, "pos": 1})  # fmt: skip
    assert main([*argv, "--force", "--labels", "a,b", "--num-labels", "3"]) == 2
    err = capsys.readouterr().err
    assert "--num-labels 3 disagrees with --labels, which names 2 classes" in err and err.count("\n") == 1
    with pytest.raises(SystemExit):
        main([*argv, "--force", "--labels", "a,a"])
    assert "expected distinct, non-empty comma-separated label names" in capsys.readouterr().err


def test_init_help_shows_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["init", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for default in ("(default: 3,4,5)", "(default: 100)", "(default: 2, or --labels' count)", "(default: 0)",
                    "(default: the embedded MiniLM)"):  # fmt: skip
        assert default in out


def test_hf_sequence_classifier_imports_through_init_with_extras_reported(tmp_path, capsys):
    from transformers import BertForSequenceClassification

    hf = BertForSequenceClassification(BertConfig(**BertCnnConfig(**TINY).to_hf_dict(), num_labels=4))
    hf.save_pretrained(tmp_path / "hf")
    assert main(["init", str(tmp_path / "ck"), "--backbone", str(tmp_path / "hf"), "--num-filters", "5"]) == 0
    err = capsys.readouterr().err
    assert "classifier.weight" in err and "classifier.bias" in err
    _, tensors = load_checkpoint(tmp_path / "ck")
    want = hf.state_dict()["bert.encoder.layer.1.output.dense.weight"].numpy()
    assert tensors["bert.encoder.layer.1.output.dense.weight"].tobytes() == want.tobytes()
    # A plain HF directory is not a bertcnn checkpoint: port says to use init.
    assert main(["port", str(tmp_path / "hf"), str(tmp_path / "x.pt")]) == 2
    assert "bertcnn init CK_DIR --backbone" in capsys.readouterr().err


# -- `bertcnn init` refuses what would not be a classifier, and never writes over what is not its own.
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
    assert "a folder bertcnn did not write" in capsys.readouterr().err
    assert (thesis / "draft.tex").read_text() == "x"


def test_the_current_folder_is_never_replaced(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "keep.txt").write_text("x")
    assert main(["init", ".", "--force"]) == 2
    assert "must not be the current folder" in capsys.readouterr().err and (tmp_path / "keep.txt").exists()


def test_max_length_sets_the_length_the_model_reads(tmp_path, capsys):
    tiny_hf_bert(tmp_path / "hf")
    argv = ["init", str(tmp_path / "ck"), "--backbone", str(tmp_path / "hf"), "--num-filters", "3"]
    assert main([*argv, "--max-length", "9"]) == 0
    assert json.loads((tmp_path / "ck" / "config.json").read_text())["max_seq_length"] == 9
    assert json.loads((tmp_path / "ck" / "tokenizer.json").read_text())["truncation"]["max_length"] == 9
    capsys.readouterr()
    text = " ".join(["hi"] * 30)
    assert main(["predict", "--checkpoint", str(tmp_path / "ck"), "--framework", "torch", text]) == 0
    assert "longer than 9 tokens (max_seq_length, the length the model was trained to read)" in capsys.readouterr().err
    assert main(["init", str(tmp_path / "unset"), *argv[2:]]) == 0  # without it: not recorded
    assert "max_seq_length" not in json.loads((tmp_path / "unset" / "config.json").read_text())


@pytest.mark.parametrize("n", ["24", "1"])
def test_a_max_length_the_model_cannot_read_is_refused_before_writing(tmp_path, n, capsys):
    tiny_hf_bert(tmp_path / "hf")
    assert main(["init", str(tmp_path / "ck"), "--backbone", str(tmp_path / "hf"), "--max-length", n]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "`max_seq_length`" in err and "max_position_embeddings=23" in err
    assert err.rstrip().endswith(f"Received: {n}") and not (tmp_path / "ck").exists()
