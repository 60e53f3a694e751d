"""Sweep specs are validated before any compute; each bad spec fails naming its field."""

import copy
from pathlib import Path

import pytest
import yaml

from robust_edit.config import load_sweep
from robust_edit.pipeline.plan import check_runtime

QUICKSTART = yaml.safe_load(Path("sweeps/quickstart.yaml").read_text())


def _mutate(fn):
    spec = copy.deepcopy(QUICKSTART)
    fn(spec)
    return spec


def _set(path, value):
    def fn(spec):
        node = spec
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return fn


BAD = {
    "unknown edit method": (_set(["edits", 0, "method"], "memit"), ["method", "'uce' or 'refact'"]),
    "unknown fine-tune method": (_set(["finetunes", 0, "method"], "qlora"), ["method", "'lora'"]),
    "rank not a positive int": (_set(["finetunes", 2, "ranks"], [4, 0]), ["ranks", "positive integer"]),
    "rank not an int": (_set(["finetunes", 2, "ranks"], ["four"]), ["ranks", "integer"]),
    "ranks on full fine-tuning": (_set(["finetunes", 0, "ranks"], [4]), ["ranks", "lora and dora"]),
    "missing dataset": (lambda s: s["edits"][0].pop("dataset"), ["dataset", "Field required"]),
    "unknown dataset": (_set(["edits", 2, "dataset"], "i2p-v2"), ["dataset", "i2p-v2", "known"]),
    "dataset of the wrong format": (_set(["edits", 1, "dataset"], "world:road"), ["edits[debias].dataset", "professions"]),
    "task not of the method": (_set(["edits", 0, "task"], "debias"), ["debias", "not a refact task"]),
    "unknown model reference": (_set(["models"], ["world:nope"]), ["models", "world:nope", "known"]),
    "duplicate edit names": (_set(["edits", 1, "name"], "appearance"), ["edits", "duplicate", "appearance"]),
    "duplicate fine-tune names": (_set(["finetunes", 3, "name"], "lora"), ["finetunes", "duplicate", "lora"]),
    "unknown world subject": (_set(["finetunes", 1, "dataset"], "world:dreambooth:cat"), ["finetunes[dreambooth].dataset", "ring"]),
    "typo in a field name": (_set(["evaluation", "seeeds"], 3), ["seeeds", "Extra inputs"]),
    "negative learning rate": (_set(["finetunes", 0, "lr"], -1e-4), ["lr", "greater than 0"]),
    "bad row range": (_set(["edits", 0, "rows"], "first-three"), ["rows", "start:stop"]),
    "no fine-tunes": (_set(["finetunes"], []), ["finetunes", "at least 1"]),
    "bad sweep name": (_set(["name"], "my sweep!"), ["name", "pattern"]),
    "storage as a URI": (_set(["storage"], "s3://bucket/sweep"), ["storage", "s3://bucket/sweep", "mount"]),
    "zero concurrent trials": (_set(["resources", "max_concurrent_trials"], 0), ["max_concurrent_trials", "greater than or equal to 1"]),
    "checkpoint not saved": (_set(["evaluation", "checkpoints"], [100, 150]),
                             ["evaluation.checkpoints [150]", "finetunes[full]", "multiples of 100"]),
    "checkpoint at the last step": (_set(["evaluation", "checkpoints"], [400]),
                                    ["evaluation.checkpoints [400]", "below 400"]),
    "checkpoints of an unknown edit": (_set(["evaluation", "checkpoints"], {"edits": ["apperance"]}),
                                       ["evaluation.checkpoints.edits ['apperance']", "appearance"]),
    "quality sets of an unknown edit": (_set(["evaluation", "quality", "edits"], ["unsafe", "rolle"]),
                                        ["evaluation.quality.edits ['rolle']", "appearance"]),
    "checkpoint steps and every": (_set(["evaluation", "checkpoints"], {"steps": [100], "every": 100}),
                                   ["steps or every"]),
    "unknown sampling precision": (_set(["evaluation", "generation", "precision"], "int8"),
                                   ["precision", "'bf16'"]),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_malformed_spec_fails_naming_the_field(case, tmp_path):
    mutate, fragments = BAD[case]
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(_mutate(mutate)))
    with pytest.raises(ValueError) as err:
        load_sweep(path)
    for fragment in fragments:
        assert fragment in str(err.value), (case, str(err.value))


@pytest.mark.parametrize("field, value, fragment", [
    ("storage", "{tmp}/a-file/out", "storage"),  # under a file: not writable, even for root
    ("dataset", "{tmp}/no-such-folder", "finetunes[full].dataset"),
])
def test_unwritable_storage_and_missing_folder_fail_before_compute(field, value, fragment, tmp_path):
    (tmp_path / "a-file").write_text("")
    where = ["storage"] if field == "storage" else ["finetunes", 0, "dataset"]
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(_mutate(_set(where, value.format(tmp=tmp_path)))))
    spec = load_sweep(path)  # the schema is fine; the machine is not
    with pytest.raises(ValueError) as err:
        check_runtime(spec)
    assert fragment in str(err.value)


@pytest.mark.parametrize("name", ["quickstart", "paper-world", "paper"])
def test_shipped_specs_validate(name):
    spec = load_sweep(f"sweeps/{name}.yaml")
    assert spec.name == name and spec.edits and spec.finetunes
