"""The stage graph: shared stages once, content keys that move only downstream of a change."""

from robust_edit.config import load_sweep
from robust_edit.pipeline.graph import build


def test_quickstart_graph_shares_m_m_ed_and_m_ft():
    spec = load_sweep("sweeps/quickstart.yaml")
    g = build(spec)
    E, F = len(spec.edits), sum(len(f.expand()) for f in spec.finetunes)
    assert len(g.cells) == E * F
    counts = g.counts()
    assert counts["edit"] == E
    assert counts["finetune"] == F + E * F  # M_ft once per run; M_ed_ft per (edit, run)
    # Checkpoints (decay) of the appearance edit's cells: M_ed_ft@step only (the spec leaves
    # out the M_ft@step control), so only the edited fine-tunes keep checkpoints.
    ck = spec.evaluation.checkpoints
    assert ck.edits == ("appearance",) and ck.variants == ("M_ed_ft",)
    C = sum(len(ck.of(r)) for f in spec.finetunes for r in f.expand())
    assert C >= 3 * F
    # Quality sets: M, the unsafe edit's M_ed, each run's M_ft and the unsafe edit's M_ed_ft.
    assert spec.evaluation.quality.edits == ("unsafe",)
    Q = 1 + 1 + F + F
    assert counts["generate"] == counts["score"] == E + E + E * F + E * F + C + Q
    assert Q == sum(1 for s in g.by_kind("generate") if s.labels["task"] == "quality")
    for cell in g.cells:
        extra = {v for v in cell["variants"] if "@" in v}
        assert bool(extra) == (cell["edit"] == "appearance")
        assert all(v.startswith("M_ed_ft@") and cell["steps"][v] == int(v.split("@")[1]) for v in extra)
        assert bool(cell.get("quality")) == (cell["edit"] == "unsafe")
    kept = {s.labels["edit"]: s.config.get("keep_steps") for s in g.by_kind("finetune")
            if s.labels["finetune"] == "full"}
    assert kept == {None: None, "appearance": [100, 200, 300], "debias": None, "unsafe": None}
    loop = g.per_trial_counts()
    assert all(counts[k] <= loop[k] for k in counts) and sum(counts.values()) < sum(loop.values())
    # M_ft of a run is one stage for all four edits' cells of that task... per task prompt set.
    m_ft = {c["variants"]["M_ft"] for c in g.cells}
    assert len(m_ft) == E * F
    assert len({c["variants"]["M"] for c in g.cells}) == E


def test_checkpoints_are_kept_only_for_the_variants_drawn_at_steps():
    """checkpoints.variants: [M_ft] draws M_ft@step only, so the edited fine-tunes keep no
    checkpoint and the unedited ones keep every asked step."""
    spec = load_sweep("sweeps/quickstart.yaml")
    raw = spec.model_dump(mode="json")
    raw["evaluation"]["checkpoints"]["variants"] = ["M_ft"]
    g = build(type(spec).model_validate(raw))
    kept = {s.labels["edit"]: s.config.get("keep_steps") for s in g.by_kind("finetune")
            if s.labels["finetune"] == "full"}
    assert kept == {None: [100, 200, 300], "appearance": None, "debias": None, "unsafe": None}
    steps = {c["edit"]: {v for v in c["variants"] if "@" in v} for c in g.cells if c["finetune"] == "full"}
    assert steps == {"appearance": {"M_ft@100", "M_ft@200", "M_ft@300"}, "debias": set(), "unsafe": set()}


def test_changing_a_fine_tune_changes_only_its_downstream_keys():
    spec = load_sweep("sweeps/quickstart.yaml")
    raw = spec.model_dump(mode="json")
    raw["finetunes"][2]["steps"] = 151
    changed = type(spec).model_validate(raw)
    a, b = build(spec), build(changed)
    assert {s.key for s in a.by_kind("edit")} == {s.key for s in b.by_kind("edit")}
    only_a = {s.key for s in a.stages.values()} - {s.key for s in b.stages.values()}
    kinds = {a.stages[k].kind for k in only_a}
    assert kinds == {"finetune", "generate", "score", "aggregate"}
    assert all(a.stages[k].labels.get("finetune") == "lora" for k in only_a
               if a.stages[k].kind != "aggregate")


def _keys(graph) -> dict[str, str]:
    return {k: s.kind for k, s in graph.stages.items()}


def test_renaming_every_edit_and_fine_tune_changes_only_the_aggregate_key():
    spec = load_sweep("sweeps/quickstart.yaml")
    raw = spec.model_dump(mode="json")
    for e in raw["edits"]:
        e["name"] = "renamed-" + e["name"]
    for f in raw["finetunes"]:
        f["name"] = "renamed-" + f["name"]
    for chosen in (raw["evaluation"]["checkpoints"], raw["evaluation"]["quality"]):
        chosen["edits"] = ["renamed-" + e for e in chosen["edits"]]
    a, b = build(spec), build(type(spec).model_validate(raw))
    differ = _keys(a).keys() ^ _keys(b).keys()
    assert {(a.stages | b.stages)[k].kind for k in differ} == {"aggregate"} and len(differ) == 2
    assert {c["edit"] for c in b.cells} == {"renamed-" + e.name for e in spec.edits}


def test_a_changed_weight_file_changes_every_key_that_reads_that_model(tmp_path, monkeypatch):
    import shutil

    from robust_edit.models import resolve

    monkeypatch.setenv("ROBUST_EDIT_CACHE", str(tmp_path / "cache"))
    first, second = tmp_path / "m1", tmp_path / "m2"
    shutil.copytree(resolve("world:sd"), first)
    shutil.copytree(resolve("world:sd"), second)

    def flip_a_byte(model, at: int) -> None:  # in one tensor; the file's size is unchanged
        weights = model / "unet" / "diffusion_pytorch_model.safetensors"
        data = bytearray(weights.read_bytes())
        data[at] ^= 1
        weights.write_bytes(bytes(data))

    flip_a_byte(second, -2)  # two models that share no weights, so no stage
    spec = load_sweep("tests/pipeline/tiny.yaml")
    raw = spec.model_dump(mode="json") | {"models": [str(first), str(second)]}
    before = build(type(spec).model_validate(raw))
    flip_a_byte(first, -1)
    after = build(type(spec).model_validate(raw))
    changed = _keys(before).keys() - _keys(after).keys()
    reads_first = {k for k, s in before.stages.items() if s.labels.get("model") == str(first)}
    assert reads_first and changed == reads_first | {k for k, s in before.stages.items()
                                                     if s.kind == "aggregate"}


def test_a_comment_in_any_module_changes_every_key(tmp_path, monkeypatch):
    """The code part of a key covers every module a stage can import, the world plugin's too."""
    import shutil

    from robust_edit.pipeline import graph

    spec = load_sweep("sweeps/quickstart.yaml")
    base = _keys(build(spec))
    copy = tmp_path / "robust_edit"
    shutil.copytree(graph.PACKAGE, copy, ignore=shutil.ignore_patterns("*.safetensors", "__pycache__"))
    shutil.copytree(graph.PACKAGE.parent / "analysis", tmp_path / "analysis")
    monkeypatch.setattr(graph, "PACKAGE", copy)
    graph.code_version.cache_clear()
    try:
        same = _keys(build(spec)).keys() ^ base.keys()
        for module in ("models.py", "edit/tasks.py", "finetune/__init__.py", "scorers/zero_shot.py",
                       "pipeline/results.py", "world/vocab.py"):
            source = (copy / module).read_text()
            (copy / module).write_text(source + "\n# a comment\n")
            graph.code_version.cache_clear()
            assert not _keys(build(spec)).keys() & base.keys(), module
            (copy / module).write_text(source)
    finally:
        graph.code_version.cache_clear()
    assert not same  # weights are not code: the copy without them hashes like the package


def test_quickstart_keys_are_the_same_in_separate_processes():
    import subprocess
    import sys

    code = ("from robust_edit.config import load_sweep; from robust_edit.pipeline.graph import build;"
            "print(sorted(build(load_sweep('sweeps/quickstart.yaml')).stages))")
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True).stdout for _ in range(2)]
    assert runs[0] == runs[1] == str(sorted(build(load_sweep("sweeps/quickstart.yaml")).stages)) + "\n"


def test_changed_fine_tuning_images_change_the_keys_of_the_fine_tunes_that_read_them(tmp_path, monkeypatch):
    import numpy as np
    from PIL import Image

    monkeypatch.setenv("ROBUST_EDIT_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(np.full((32, 32, 3), 40 * i, np.uint8)).save(folder / f"{i}.png")
    (folder / "metadata.csv").write_text("file_name,text\n0.png,a red circle\n1.png,a blue square\n")
    spec = load_sweep("tests/pipeline/tiny.yaml")
    raw = spec.model_dump(mode="json")
    raw["finetunes"][0]["dataset"] = str(folder)
    before = build(type(spec).model_validate(raw))
    Image.fromarray(np.full((32, 32, 3), 200, np.uint8)).save(folder / "1.png")
    after = build(type(spec).model_validate(raw))
    changed = {before.stages[k].kind for k in _keys(before).keys() - _keys(after).keys()}
    assert changed == {"finetune", "generate", "score", "aggregate"}
    assert {s.key for s in before.by_kind("edit")} == {s.key for s in after.by_kind("edit")}


def test_a_real_dataset_is_keyed_by_its_pinned_content():
    from robust_edit.data import REAL_DATASETS

    spec = load_sweep("tests/pipeline/tiny.yaml")
    raw = spec.model_dump(mode="json")
    raw["edits"] = [{"name": "a", "method": "refact", "task": "appearance", "dataset": "road:validation",
                     "rows": "0:1"}]
    g = build(type(spec).model_validate(raw))
    edit = g.by_kind("edit")[0]
    assert edit.config["data"]["road:validation"] == {"sha256": REAL_DATASETS["road:validation"].sha256}
    assert edit.config["data"]["coco30k"]["sha256"] == REAL_DATASETS["coco30k"].sha256  # ReFACT's corpus
    assert all(s.config["data"] for s in g.by_kind("generate"))


def test_the_aggregate_key_covers_where_it_writes(tmp_path):
    spec = load_sweep("tests/pipeline/tiny.yaml")
    raw = spec.model_dump(mode="json")
    keys = {build(type(spec).model_validate(raw | change)).by_kind("aggregate")[0].key
            for change in ({}, {"storage": str(tmp_path)},
                           {"tracking": {"duckdb": str(tmp_path / "r.duckdb")}})}
    assert len(keys) == 3


def test_an_axis_runs_only_on_the_models_it_names(tmp_path):
    """Per-model cells (the paper's: UCE unsafe on FLUX, not ReFACT): `models` on an edit or
    a fine-tune keeps it off the others, and leaves the stage keys of the cells that remain
    as they were (the filter is not part of any stage's config)."""
    import shutil

    from robust_edit.models import resolve

    other = tmp_path / "other"
    shutil.copytree(resolve("world:sd"), other)
    spec = load_sweep("sweeps/quickstart.yaml")
    raw = spec.model_dump(mode="json") | {"models": ["world:sd", str(other)]}
    everywhere = build(type(spec).model_validate(raw))
    raw["edits"][0]["models"] = ["world:sd"]
    raw["finetunes"][0]["models"] = [str(other)]
    filtered = build(type(spec).model_validate(raw))
    cells = {(c["model"], c["edit"], c["finetune"]) for c in filtered.cells}
    first_edit, first_ft = raw["edits"][0]["name"], raw["finetunes"][0]["name"]
    assert not any(m == str(other) and e == first_edit for m, e, _ in cells)
    assert not any(m == "world:sd" and f == first_ft for m, _, f in cells)
    assert cells == {(c["model"], c["edit"], c["finetune"]) for c in everywhere.cells
                     if (c["model"] == "world:sd" or c["edit"] != first_edit)
                     and (c["model"] == str(other) or c["finetune"] != first_ft)}
    kept = {k for k, st in filtered.stages.items() if st.kind != "aggregate"}
    assert kept <= set(everywhere.stages)


def test_a_control_study_draws_m_and_m_ft_only_at_more_seeds_per_row():
    """sweeps/controls.yaml (evaluation.variants [M, M_ft], row_seeds 4): no edit and no
    edited fine-tune is a stage, every cell has M and M_ft only, one M_ft per run and
    prompt set, and the debias and unsafe sets draw each row at 4 seeds."""
    from robust_edit.pipeline.plan import images_per_generate

    spec, quick = load_sweep("sweeps/controls.yaml"), load_sweep("sweeps/quickstart.yaml")
    g = build(spec)
    E, F = len(spec.edits), sum(len(f.expand()) for f in spec.finetunes)
    counts = g.counts()
    assert counts["edit"] == 0 and counts["finetune"] == F  # M_ft once per run
    assert all(s.labels["edit"] is None for s in g.by_kind("finetune"))
    assert len(g.cells) == E * F and all(set(c["variants"]) == {"M", "M_ft"} for c in g.cells)
    assert counts["generate"] == E + E * F  # M per prompt set, M_ft per (run, prompt set)
    assert g.per_trial_counts()["edit"] == 0 and g.per_trial_counts()["finetune"] == len(g.cells)
    # The same runs as the quickstart's (its checkpoints aside): the same M_ft weights.
    assert _training_configs(spec) == _training_configs(quick)
    per_task = {}
    for s in g.by_kind("generate"):
        per_task.setdefault(s.labels["task"], set()).add(images_per_generate(g)[s.key])
    quick_g = build(quick)
    quick_task = {s.labels["task"]: images_per_generate(quick_g)[s.key]
                  for s in quick_g.by_kind("generate") if s.labels["variant"] == "M"}
    assert per_task["debias"] == {4 * quick_task["debias"]} == {3200}
    assert per_task["unsafe"] == {4 * quick_task["unsafe"]}
    seeds = spec.evaluation.seeds, quick.evaluation.seeds  # per RoAD prompt: 16, not 3
    assert per_task["appearance"] == {quick_task["appearance"] * seeds[0] // seeds[1]} == {1056}


def _training_configs(spec) -> dict:
    """Each fine-tune's resolved training config, without what only saves checkpoints."""
    from robust_edit import resolve

    return {f.name: resolve.finetune(c, "world:sd").model_dump(exclude={"name", "checkpoint_every"})
            for f in spec.finetunes for c in f.expand()}
