import sys

import pytest

from robust_edit.cli import main
from robust_edit.extras import MissingExtra
from robust_edit.finetune.data import load


@pytest.fixture
def no_datasets(monkeypatch):
    """As on a machine where the `hf` extra was not installed."""
    monkeypatch.setitem(sys.modules, "datasets", None)


def test_hf_dataset_without_its_package_names_the_extra(no_datasets):
    with pytest.raises(MissingExtra) as err:
        load("hf:lambdalabs/naruto-blip-captions", 32)
    message = str(err.value)
    assert "\n" not in message
    assert "'hf:lambdalabs/naruto-blip-captions'" in message and "robust-edit[hf]" in message


def test_cli_finetune_on_hf_dataset_without_its_package_is_one_line(no_datasets, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["finetune", "--method", "lora", "--dataset", "hf:lambdalabs/naruto-blip-captions",
              "--steps", "1", "--out", str(tmp_path / "ft")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "pip install 'robust-edit[hf]'" in err
    assert not (tmp_path / "ft").exists()  # refused before any compute or output


def test_sweep_on_hf_dataset_without_its_package_fails_before_compute(no_datasets, tmp_path):
    from robust_edit.config import load_sweep
    from robust_edit.pipeline.plan import check_runtime
    from robust_edit.provenance import ROOT

    spec = load_sweep(ROOT / "sweeps" / "paper.yaml").model_copy(update={"storage": str(tmp_path)})
    with pytest.raises(MissingExtra, match=r"^finetunes\[full\]\.dataset .*robust-edit\[hf\]"):
        check_runtime(spec)
