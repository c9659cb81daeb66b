"""`bertcnn port SRC DST --labels a,b,c`: names the classes of an existing checkpoint, weights untouched."""

from __future__ import annotations

from safetensors.numpy import load_file

from parity.commands import main
from parity.config import BertCnnConfig
from tests.train_helpers import tiny_checkpoint


def test_labels_name_the_classes_and_the_weights_stay_bit_identical(tmp_path, capsys):
    config = tiny_checkpoint(tmp_path / "ck")
    assert config.label_names is None and config.num_labels == 3
    assert main(["port", str(tmp_path / "ck"), str(tmp_path / "named"), "--labels", "neg,neutral,pos"]) == 0
    named = BertCnnConfig.from_json_file(tmp_path / "named" / "config.json")
    assert named.label_names == ("neg", "neutral", "pos") and named.replace(label_names=None) == config
    a, b = (
        load_file(str(tmp_path / "ck" / "model.safetensors")),
        load_file(str(tmp_path / "named" / "model.safetensors")),
    )
    assert a.keys() == b.keys() and all(a[k].tobytes() == b[k].tobytes() for k in a)
    assert (tmp_path / "named" / "tokenizer.json").is_file()


def test_labels_must_name_every_class_and_need_a_destination_with_a_config(tmp_path, capsys):
    tiny_checkpoint(tmp_path / "ck")
    assert main(["port", str(tmp_path / "ck"), str(tmp_path / "two"), "--labels", "neg,pos"]) == 2
    assert "must name every one of the model's 3 classes" in capsys.readouterr().err
    assert main(["port", str(tmp_path / "ck"), str(tmp_path / "w.pt"), "--labels", "a,b,c"]) == 2
    assert "holds no config" in capsys.readouterr().err
    assert not (tmp_path / "two").exists() and not (tmp_path / "w.pt").exists()


def test_force_replaces_only_what_the_project_wrote(tmp_path, capsys):
    tiny_checkpoint(tmp_path / "ck")
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_bytes(b"jpg")
    assert main(["port", str(tmp_path / "ck"), str(photos), "--force"]) == 2
    assert "a folder this project did not write" in capsys.readouterr().err and (photos / "a.jpg").exists()
    assert main(["port", str(tmp_path / "ck"), str(tmp_path / "copy")]) == 0
    assert main(["port", str(tmp_path / "ck"), str(tmp_path / "copy"), "--force"]) == 0  # its own checkpoint
