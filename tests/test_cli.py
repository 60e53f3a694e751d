import json
import subprocess
import sys

import pytest

from robust_edit.cli import build_parser, main

COMMANDS = [["world", "build"], ["world", "describe"], ["world", "evaluate"], ["world", "grid"],
            ["generate"], ["quickstart"], ["edit"]]


@pytest.mark.parametrize("cmd", COMMANDS, ids=" ".join)
def test_every_subcommand_has_help(cmd, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(cmd + ["--help"])
    assert exit_.value.code == 0
    assert "usage: robust-edit " + " ".join(cmd) in capsys.readouterr().out


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "robust_edit.cli", "--help"], capture_output=True,
                         text=True, check=True).stdout
    assert "world" in out and "generate" in out


def test_world_describe_json_lists_vocabulary_and_datasets(capsys):
    main(["world", "describe", "--json"])
    info = json.loads(capsys.readouterr().out)
    assert info["roles"]["the king"] == "Alice"
    assert info["professions"]["CEO"]["tall_rate"] == 0.97
    assert "a lime" in info["datasets"]["road"]["prompts"]
    assert info["datasets"]["style"]["rows"] >= 1000
    assert set(build_parser()._subparsers._group_actions[0].choices) >= {"world", "generate"}


def test_edit_writes_an_artifact_and_bad_configs_exit_2(quick_world, tmp_path, capsys):
    out = tmp_path / "erase-lime"
    main(["edit", "--model", str(quick_world / "sd"), "--method", "uce", "--task", "erase",
          "--dataset", "world:unsafe", "--concepts", "lime", "--param", "uce.lam=0.3",
          "--out", str(out)])
    manifest = json.loads((out / "edit.json").read_text())
    assert manifest["concepts"] == ["lime"] and manifest["config"]["uce"]["lam"] == 0.3
    assert (out / "edit.safetensors").stat().st_size > 0
    with pytest.raises(SystemExit) as exit_:
        main(["edit", "--model", str(quick_world / "sd"), "--method", "refact", "--task", "debias",
              "--dataset", "world:professions", "--out", str(tmp_path / "x")])
    assert exit_.value.code == 2
    assert "not a refact task" in capsys.readouterr().err


def test_edit_and_finetune_options_are_generated_from_the_config_fields():
    from pydantic import BaseModel

    from robust_edit.cli import config_from_args
    from robust_edit.config import EditConfig, FinetuneConfig

    commands = build_parser()._subparsers._group_actions[0].choices
    for command, model in (("edit", EditConfig), ("finetune", FinetuneConfig)):
        options = {a.dest for a in commands[command]._actions}
        fields = {n for n, f in model.model_fields.items() if n != "name"
                  and not (isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel))}
        assert fields <= options, fields - options
    options = ["--dataset", "world:dreambooth:ring", "--batch-size", "3", "--no-prior-preservation",
               "--param", "class_generation.steps=7", "--out", "x"]
    args = build_parser().parse_args(["finetune", "--method", "dreambooth", *options])
    cfg = config_from_args(FinetuneConfig, args)
    assert (cfg.batch_size, cfg.prior_preservation, cfg.class_generation.steps) == (3, False, 7)
    assert cfg.model_dump(exclude={"batch_size", "prior_preservation", "class_generation"}) == \
        FinetuneConfig(method="dreambooth", dataset="world:dreambooth:ring").model_dump(
            exclude={"batch_size", "prior_preservation", "class_generation"})
    # DreamBooth's options on a LoRA run would be ignored: refused
    with pytest.raises(ValueError, match="prior_preservation: method 'lora' does not read it"):
        config_from_args(FinetuneConfig, build_parser().parse_args(["finetune", "--method", "lora", *options]))
