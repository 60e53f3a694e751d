"""Edit configs are validated before anything runs; errors name the field and the fix."""

import pytest
from pydantic import ValidationError

from robust_edit.config import EditConfig


@pytest.mark.parametrize("raw, names", [
    ({"method": "uce", "task": "appearance", "dataset": "world:road"}, ["appearance", "uce", "debias"]),
    ({"method": "memit", "task": "debias", "dataset": "world:professions"}, ["method", "uce", "refact"]),
    ({"method": "uce", "task": "debias", "dataset": "x", "rows": "1-3"}, ["rows", "start:stop"]),
    ({"method": "uce", "task": "unsafe", "dataset": "i2p", "uce": {"lam": 0}}, ["lam", "greater than 0"]),
    ({"method": "uce", "task": "unsafe", "dataset": "i2p", "uce": {"key_policy": "first"}}, ["key_policy", "last", "span"]),
    ({"method": "refact", "task": "role", "dataset": "road:test", "refact": {"layer": -1}}, ["layer"]),
    ({"method": "refact", "task": "role", "dataset": "road:test", "lr": 0.1}, ["lr", "Extra inputs"]),
])
def test_bad_edit_configs_name_the_field(raw, names):
    with pytest.raises(ValidationError) as err:
        EditConfig.model_validate(raw)
    for n in names:
        assert n in str(err.value)


def test_row_range():
    cfg = EditConfig(method="refact", task="appearance", dataset="world:road", rows="1:3")
    assert list(range(6))[cfg.row_slice()] == [1, 2]
