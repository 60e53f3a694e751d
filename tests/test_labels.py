"""Human labels: the agreement and per-labeller SQL (analysis/views.sql, agreement.sql,
labellers.sql) on hand-written rows with known answers, and `robust-edit labels export` /
`import` on a store built by hand (no sweep)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from robust_edit import analysis, labels
from robust_edit.cli import main
from robust_edit.config import VARIANTS
from tests.pipeline.test_results import swept  # noqa: F401 (fixture)
from tests.test_analysis import insert

UNSAFE_TEXTS = json.dumps({"safe": "a safe image", "unsafe": "an unsafe image"})


def axes(cell: str, task: str = "unsafe", ft_method: str = "lora") -> dict:
    return {"sweep": "hand", "cell": cell, "model": "m", "edit": task, "method": "uce",
            "task": task, "finetune": ft_method, "ft_method": ft_method, "rank": 4, "ft_seed": 0}


def row(cell: str, variant: str, item: int, label: str | None, *, scorer: str = "world:scorer",
        metric: str = "label", kind: str = "unsafe", texts: str = UNSAFE_TEXTS,
        target: str = "unsafe", generate_key: str | None = None, value: float | None = None) -> dict:
    return {**axes(cell), "variant": variant, "item": item, "kind": kind, "grp": "violence",
            "prompt": f"prompt {item}", "seed": item, "texts": texts, "target": target,
            "metric": metric, "label": label,
            "value": float(label == target) if value is None else value, "scorer": scorer,
            "generate_key": generate_key or f"g-{cell}-{variant}"}


# --- Fleiss' kappa ---------------------------------------------------------------------------

# Fleiss (1971), as on Wikipedia's "Fleiss' kappa": 10 subjects, 14 raters each, the number
# of raters who put each subject in each of 5 categories; kappa = 0.210.
FLEISS = np.array([(0, 0, 0, 0, 14), (0, 2, 6, 4, 2), (0, 0, 3, 5, 6), (0, 3, 9, 2, 0),
                   (2, 2, 8, 1, 1), (7, 7, 0, 0, 0), (3, 2, 6, 3, 0), (2, 5, 3, 2, 2),
                   (6, 5, 2, 1, 0), (0, 2, 2, 3, 7)])


def fleiss_kappa(counts: np.ndarray) -> tuple[float, float, float]:
    """(P_bar, P_e, kappa) of a subjects x categories count matrix, n raters per subject."""
    n = counts.sum(axis=1)
    assert (n == n[0]).all()
    p_j = counts.sum(axis=0) / counts.sum()
    p_i = (np.square(counts).sum(axis=1) - n) / (n * (n - 1))
    p_bar, p_e = p_i.mean(), np.square(p_j).sum()
    return p_bar, p_e, (p_bar - p_e) / (1 - p_e)


def test_fleiss_kappa_of_the_classic_example(db):
    p_bar, p_e, kappa = fleiss_kappa(FLEISS)
    assert kappa == pytest.approx(0.210, abs=5e-4)  # the published value
    categories = [f"c{j}" for j in range(1, 6)]
    texts = json.dumps({c: c for c in categories})
    data = []
    for item, counts in enumerate(FLEISS):  # subject i: raters 0.. in category order
        given = [c for c, k in zip(categories, counts) for _ in range(k)]
        data += [row("c", "M_ed", item, label, scorer=f"human:r{r:02d}", texts=texts, target="c1")
                 for r, label in enumerate(given)]
    # An image only one annotator labelled, by an annotator of no other image: left out.
    data.append(row("c", "M_ed", 10, "c2", scorer="human:late", texts=texts, target="c1"))
    # Machine rows of the same images are not annotators.
    data += [row("c", "M_ed", item, "c1", texts=texts, target="c1") for item in range(11)]
    insert(db, data)
    got = analysis.table(db, "agreement")
    assert len(got) == 1
    got = got.iloc[0]
    assert (got["images"], got["annotators"], got["labels"]) == (10, 14, 5)
    assert got["label_set"] == "c1|c2|c3|c4|c5"
    assert (got["P_bar"], got["P_e"], got["kappa"]) == pytest.approx((p_bar, p_e, kappa), abs=1e-12)


def test_kappa_is_per_cell_and_undefined_when_every_annotator_agrees_on_one_label(db):
    data = [row(cell, v, item, "safe", scorer=f"human:{a}")
            for cell in ("x", "y") for v in ("M", "M_ed") for item in range(3) for a in ("ann", "bob")]
    data.append(row("y", "M", 0, "unsafe", scorer="human:cy"))  # a third annotator in cell y
    insert(db, data)
    got = db.execute("SELECT cell, images, annotators, kappa FROM label_agreement ORDER BY cell").df()
    assert got["images"].tolist() == [6, 6] and got["annotators"].tolist() == [2, 3]
    assert pd.isna(got.loc[0, "kappa"])  # P_e = 1: agreement beyond chance is undefined
    # cell y: image (M, 0) has safe, safe, unsafe: P = 1/3; the 5 others 1
    p_bar = (1 / 3 + 5) / 6
    p_safe = 12 / 13
    p_e = p_safe ** 2 + (1 - p_safe) ** 2
    assert got.loc[1, "kappa"] == pytest.approx((p_bar - p_e) / (1 - p_e))


# --- per-labeller rates and the majority vote ------------------------------------------------

HUMAN = {  # item: {annotator: label}
    0: {"ann": "unsafe", "bob": "unsafe", "cy": "safe"},  # majority unsafe
    1: {"ann": "unsafe", "bob": "safe"},  # tie: undecidable
    2: {"ann": "black", "bob": "safe", "cy": "undecidable"},  # three-way tie: undecidable
    3: {"ann": "safe"},  # one annotator: theirs
}
MACHINE = {0: "unsafe", 1: "unsafe", 2: "safe", 3: "safe", 4: "unsafe"}  # item 2 blanked


def labelled_cell() -> list[dict]:
    data = [row("c", "M_ed", item, label) for item, label in MACHINE.items()]
    data += [row("c", "M_ed", item, None, metric="black", value=float(item == 2)) for item in MACHINE]
    data += [row("c", "M_ed", item, label, scorer=f"human:{a}")
             for item, votes in HUMAN.items() for a, label in votes.items()]
    return data


def test_majority_vote_with_ties_as_undecidable(db):
    insert(db, labelled_cell())
    got = dict(db.execute("SELECT item, label FROM labeller_item_labels "
                          "WHERE labeller = 'majority'").fetchall())
    assert got == {0: "unsafe", 1: "undecidable", 2: "undecidable", 3: "safe"}
    # The machine's labels as the paper counts them, on the images some annotator labelled.
    machine = dict(db.execute("SELECT item, label FROM labeller_item_labels "
                              "WHERE labeller = 'world:scorer'").fetchall())
    assert machine == {0: "unsafe", 1: "unsafe", 2: "black", 3: "safe"}


def test_per_labeller_rates_table(db):
    insert(db, labelled_cell())
    table = analysis.table(db, "labellers")
    assert set(table["labeller"]) == {"human:ann", "human:bob", "human:cy", "majority", "world:scorer"}
    share = table.set_index(["labeller", "label"])["M_ed"]
    images = table.groupby("labeller")["images per variant"].first()
    expect = {  # labeller: ({label: share of its images}, images)
        "human:ann": ({"unsafe": 2 / 4, "black": 1 / 4, "safe": 1 / 4}, 4),
        "human:bob": ({"unsafe": 1 / 3, "safe": 2 / 3}, 3),
        "human:cy": ({"safe": 1 / 2, "undecidable": 1 / 2}, 2),
        "majority": ({"unsafe": 1 / 4, "undecidable": 2 / 4, "safe": 1 / 4}, 4),
        "world:scorer": ({"unsafe": 2 / 4, "black": 1 / 4, "safe": 1 / 4}, 4),
    }
    for labeller, (shares, n) in expect.items():
        for label in ("safe", "unsafe", "black", "undecidable"):
            assert share[(labeller, label)] == pytest.approx(shares.get(label, 0.0)), (labeller, label)
        assert images[labeller] == n
    assert table["M"].isna().all()  # no M images in this cell
    # Humans first, then their majority, then the machine, within each label.
    assert table[table["label"] == "safe"]["labeller"].tolist() == [
        "human:ann", "human:bob", "human:cy", "majority", "world:scorer"]


def test_human_rows_leave_the_machine_tables_as_they_were(db):
    """The study's tables read the machine scorer only: adding human copies of its rows
    (other labels, values) changes none of them."""
    rng = np.random.default_rng(3)
    data = []
    for variant in VARIANTS:
        for item in range(12):
            data.append(row("c", variant, item, str(rng.choice(["safe", "unsafe"]))))
            data.append(row("c", variant, item, None, metric="black", value=float(rng.random() < 0.2)))
            data.append({**row("a", variant, 100 + item, str(rng.choice(["new", "old"])),
                               kind="efficacy", texts=json.dumps({"new": "n", "old": "o"}),
                               target="new"), **{k: v for k, v in axes("a", "appearance").items()}})
    insert(db, data)
    analysis.resample(db, resamples=30)
    names = ("unsafe", "unsafe_labels", "edit_metrics", "findings", "compare")
    before = {t: analysis.table(db, t) for t in names}
    views = ("variant_metrics", "cell_flips", "unsafe_item_labels")
    before |= {v: db.execute(f"SELECT * FROM {v} ORDER BY ALL").df() for v in views}
    human = [{**r, "scorer": f"human:{a}", "label": lab, "value": float(lab == r["target"])}
             for r in data if r["metric"] == "label"
             for a, lab in (("ann", "undecidable"), ("bob", "black"))]
    insert(db, human)
    for name in names:
        pd.testing.assert_frame_equal(analysis.table(db, name), before[name], obj=name)
    for v in views:
        pd.testing.assert_frame_equal(db.execute(f"SELECT * FROM {v} ORDER BY ALL").df(), before[v], obj=v)
    assert len(analysis.table(db, "agreement")) == 2  # the human rows are there, for their views


# --- export and import on a store built by hand ----------------------------------------------

UNSAFE_SET = {"task": "unsafe", "dataset": "world:unsafe"}
ROAD_SET = {"task": "appearance", "dataset": "world:road"}
ITEMS = {  # prompt set: its items (item, kind, prompt, texts, target)
    "unsafe": [(0, "unsafe", "a bloody lime", UNSAFE_TEXTS, "unsafe"),
               (1, "unsafe", "a gore box", UNSAFE_TEXTS, "unsafe"),
               (2, "safe", "a lime", UNSAFE_TEXTS, "unsafe")],
    "appearance": [(0, "efficacy", "a lime", json.dumps({"new": "a red lime", "old": "a green lime"}),
                    "new")],
}
STAGES = {  # generate key: (variant, edit label, prompt set)
    "aaaa00000000000000m0": ("M", None, UNSAFE_SET),
    "aaaa0000000000000ed0": ("M_ed", "unsafe", UNSAFE_SET),
    "aaaa0000000000000ft0": ("M_ft", None, UNSAFE_SET),
    "bbbb00000000000000m0": ("M", None, ROAD_SET),
    "bbbb0000000000000ed0": ("M_ed", "appearance", ROAD_SET),
}
CELLS = {  # two cells share the unsafe edit's M and M_ed images
    "cell-lora": {"M": "aaaa00000000000000m0", "M_ed": "aaaa0000000000000ed0",
                  "M_ft": "aaaa0000000000000ft0"},
    "cell-full": {"M": "aaaa00000000000000m0", "M_ed": "aaaa0000000000000ed0"},
}


def png(level: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((4, 4, 3), level, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def image_png(key: str, item: int) -> bytes:
    return png(sorted(STAGES).index(key) * 20 + item)


@pytest.fixture()
def store(tmp_path) -> Path:
    """Generate stages as a sweep leaves them (images.parquet + stage.json), and a results
    database of two cells with its aggregate stage's marker."""
    root = tmp_path / "store"
    for key, (variant, edit, prompt_set) in STAGES.items():
        folder = root / "stages" / "generate" / key
        folder.mkdir(parents=True)
        items = pd.DataFrame(ITEMS[prompt_set["task"]],
                             columns=["item", "kind", "prompt", "texts", "target"])
        items.assign(grp="g", seed=items["item"] + 7,
                     image=[image_png(key, i) for i in items["item"]]).to_parquet(folder / "images.parquet")
        stage_labels = {"model": "world:sd", "variant": variant, "task": prompt_set["task"]}
        (folder / "stage.json").write_text(json.dumps({
            "kind": "generate", "key": key, "labels": stage_labels | ({"edit": edit} if edit else {}),
            "config": {"variant": variant, "prompt_set": prompt_set, "seeds": 1}}))
    db_path = root / "results.duckdb"
    con = analysis.connect(db_path)
    con.execute("CREATE TABLE aggregate_key AS SELECT 'agg0' AS key")
    data = []
    for cell, variants in CELLS.items():
        for variant, key in variants.items():
            for item, kind, _, texts, target in ITEMS["unsafe"]:
                data.append({**row(cell, variant, item, "unsafe" if item else "safe", kind=kind,
                                   texts=texts, target=target, generate_key=key),
                             "finetune": cell, "ft_method": cell.removeprefix("cell-")})
                data.append(row(cell, variant, item, None, metric="black", value=0.0,
                                generate_key=key, kind=kind))
    insert(con, data)
    con.close()
    marker = root / "stages" / "aggregate" / "agg0" / "stage.json"
    marker.parent.mkdir(parents=True)
    marker.write_text(json.dumps({"kind": "aggregate", "key": "agg0", "duckdb": str(db_path)}))
    return root


def export_csv(store: Path, *args: str) -> pd.DataFrame:
    main(["labels", "export", str(store), *args])
    return pd.read_csv(store / "labelling" / "unsafe" / "labels.csv", keep_default_na=False)


def test_export_writes_every_unsafe_prompt_image_blind_to_the_variant(store, capsys):
    table = export_csv(store)
    out = store / "labelling" / "unsafe"
    assert list(table.columns) == ["image_key", "file", "prompt", "allowed", "annotator", "label"]
    unsafe_keys = [k for k, (_, _, s) in STAGES.items() if s is UNSAFE_SET]
    assert sorted(table["image_key"]) == sorted(f"{k}:{i}" for k in unsafe_keys for i in range(3))
    assert (table["allowed"] == "safe|unsafe|undecidable|black").all()
    assert (table["annotator"] == "").all() and (table["label"] == "").all()
    for key_item, file, prompt in table[["image_key", "file", "prompt"]].itertuples(index=False):
        key, item = key_item.split(":")
        assert (out / file).read_bytes() == image_png(key, int(item))
        assert prompt == ITEMS["unsafe"][int(item)][2]
    # Blind: files numbered in the shuffled order, nothing naming a variant or an edit.
    assert table["file"].tolist() == [f"images/{n:04d}.png" for n in range(1, 10)]
    assert table["image_key"].tolist() != sorted(table["image_key"])
    text = (out / "labels.csv").read_text()
    assert not any(word in text for word in ("M_ed", "M_ft", "variant", "lora", "uce"))
    manifest = json.loads((out / "labels.json").read_text())
    assert manifest["images"] == 9 and manifest["labels"] == ["black", "safe", "undecidable", "unsafe"]
    assert "robust-edit labels import" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["images", "labels.csv", "labels.json"]


def test_export_of_one_edit_takes_its_m_images_and_no_other_edits(store, tmp_path):
    main(["labels", "export", str(store), "--edit", "appearance", "--out", str(tmp_path / "app")])
    table = pd.read_csv(tmp_path / "app" / "labels.csv", keep_default_na=False)
    assert sorted(table["image_key"]) == ["bbbb00000000000000m0:0", "bbbb0000000000000ed0:0"]
    assert (table["allowed"] == "new|old|undecidable|black").all()


def test_export_never_overwrites_what_it_did_not_create(store, tmp_path, capsys):
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "mine.txt").write_text("keep")
    for argv, says in ((["--out", str(foreign)], "not this command's output"),
                       (["--edit", "nope"], "--edit nope: no images of that edit")):
        with pytest.raises(SystemExit) as exit_:
            main(["labels", "export", str(store), *argv])
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and err.count("\n") == 1 and says in err, err
    assert [p.name for p in foreign.iterdir()] == ["mine.txt"]
    export_csv(store)
    with pytest.raises(SystemExit):  # its own earlier export: only with --force
        export_csv(store)
    assert "--force" in capsys.readouterr().err
    assert len(export_csv(store, "--force")) == 9


def filled(store: Path, annotators: dict[str, list[str]]) -> Path:
    """The exported CSV filled in: {annotator: the label of each row, '' to leave a row out}."""
    table = export_csv(store, "--force")
    parts = [table.assign(annotator=[a if lab else "" for lab in labs], label=labs)
             for a, labs in annotators.items()]  # a row left blank is not imported
    path = store.parent / "filled.csv"
    pd.concat(parts).to_csv(path, index=False)
    return path


def human_rows(db_path: Path) -> pd.DataFrame:
    con = duckdb.connect(str(db_path), read_only=True)
    df = con.execute("SELECT cell, variant, generate_key, item, kind, target, scorer, label, value "
                     "FROM results WHERE scorer LIKE 'human:%' ORDER BY ALL").df()
    con.close()
    return df


def test_import_then_export_round_trip(store, capsys):
    ann = ["unsafe", "safe", "black", "undecidable", "safe", "unsafe", "safe", "safe", "unsafe"]
    bob = ["unsafe", "safe", "", "", "Safe", "unsafe", "", "safe", ""]  # 5 rows, one in capitals
    path = filled(store, {"ann": ann, "bob": bob})
    machine = duckdb.connect(str(store / "results.duckdb"), read_only=True).execute(
        "SELECT * FROM results ORDER BY ALL").df()
    main(["labels", "import", str(path), str(store)])
    out = capsys.readouterr().out
    assert "9 labels of ann" in out and "5 labels of bob" in out
    stored = {a: pd.read_parquet(store / "labels" / f"{a}.parquet") for a in ("ann", "bob")}
    assert len(stored["ann"]) == 9 and set(stored["bob"]["label"]) == {"safe", "unsafe"}
    exported = pd.read_csv(store / "labelling" / "unsafe" / "labels.csv", keep_default_na=False)
    # Every labelled image is in the database once per results row of it: the M and M_ed
    # images are in both cells, the M_ft image in one.
    rows = human_rows(store / "results.duckdb")
    per_image = dict(zip(exported["image_key"], ann))
    expect = sum((2 if key.startswith(("aaaa00000000000000m0", "aaaa0000000000000ed0")) else 1)
                 for key in per_image)
    assert len(rows[rows["scorer"] == "human:ann"]) == expect
    for r in rows.itertuples():
        labelled = per_image if r.scorer == "human:ann" else None
        if labelled is not None:
            assert r.label == labelled[f"{r.generate_key}:{r.item}"]
        assert r.value == float(r.label == r.target)
    # The machine rows and the database's identity are as they were.
    con = duckdb.connect(str(store / "results.duckdb"), read_only=True)
    after = con.execute("SELECT * FROM results WHERE scorer NOT LIKE 'human:%' ORDER BY ALL").df()
    assert con.execute("SELECT key FROM aggregate_key").fetchone() == ("agg0",)
    agreement = con.execute("SELECT cell, images, annotators FROM label_agreement ORDER BY cell").df()
    con.close()
    pd.testing.assert_frame_equal(after, machine)
    assert agreement["annotators"].tolist() == [2, 2]
    assert agreement["images"].tolist() == [4, 5]  # bob's images: 4 in cell-full, 5 in cell-lora
    assert sorted(p.name for p in store.iterdir()) == [  # no temporary database left beside it
        "driver.lock", "labelling", "labels", "results.duckdb", "stages"]

    # Re-import of one annotator replaces that annotator's labels only.
    ann_file = (store / "labels" / "ann.parquet").read_bytes()
    main(["labels", "import", str(filled(store, {"bob": ["black"] * 9})), str(store)])
    assert (store / "labels" / "ann.parquet").read_bytes() == ann_file
    rows = human_rows(store / "results.duckdb")
    assert set(rows.loc[rows["scorer"] == "human:bob", "label"]) == {"black"}
    assert len(rows[rows["scorer"] == "human:bob"]) == len(rows[rows["scorer"] == "human:ann"])


HEADER = "image_key,annotator,label\n"
BAD = {  # name: (CSV text, line, words the error names)
    "missing-column": ("image_key,label\naaaa00000000000000m0:0,safe\n", 1,
                       ["'annotator'", "missing"]),
    "unknown-key": (HEADER + "aaaa00000000000000m0:0,ann,safe\naaaa00000000000000m0:9,ann,safe\n",
                    3, ["image_key", "'aaaa00000000000000m0:9'"]),
    "bad-label": (HEADER + "aaaa00000000000000m0:0,ann,safe\naaaa00000000000000m0:1,ann,unsure\n",
                  3, ["label", "'unsure'", "safe, unsafe, undecidable, black"]),
    "no-annotator": (HEADER + "aaaa00000000000000m0:0,,safe\n", 2, ["annotator", "''"]),
    "annotator-path": (HEADER + "aaaa00000000000000m0:0,../x,safe\n", 2, ["annotator", "'../x'"]),
    "twice": (HEADER + "aaaa00000000000000m0:0,ann,safe\naaaa00000000000000m0:0,ann,unsafe\n", 3,
              ["labelled twice", "also line 2"]),
    "wrong-label-set": (HEADER + "bbbb00000000000000m0:0,ann,unsafe\n", 2,
                        ["label", "'unsafe'", "new, old"]),
}


@pytest.mark.parametrize("name", BAD, ids=BAD)
def test_import_refuses_a_bad_row_in_one_line_and_writes_nothing(store, name, capsys):
    text, line, words = BAD[name]
    path = store.parent / "bad.csv"
    path.write_text(text + "aaaa0000000000000ed0:0,ann,safe\n" * (name != "missing-column"))
    before = {p: p.read_bytes() for p in store.rglob("*") if p.is_file()}
    with pytest.raises(SystemExit) as exit_:
        main(["labels", "import", str(path), str(store)])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert f"{path} line {line}: " in err, err
    for word in words:
        assert word in err, (word, err)
    assert {p: p.read_bytes() for p in store.rglob("*") if p.is_file()} == before
    assert not (store / "labels").exists()


def test_several_bad_rows_are_counted_in_the_one_line(store, capsys):
    path = store.parent / "bad.csv"
    path.write_text("image_key,annotator,label\nx:1,ann,safe\ny:2,ann,safe\nz,ann,safe\n")
    with pytest.raises(SystemExit):
        main(["labels", "import", str(path), str(store)])
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "line 2" in err and "(and 2 more row(s) with errors)" in err


def test_the_database_build_includes_imported_labels(store):
    """A sweep's database build (results.build_database) calls insert_human_rows after the
    machine rows: the same human rows as an import's update."""
    main(["labels", "import", str(filled(store, {"ann": ["unsafe"] * 9})), str(store)])
    imported = human_rows(store / "results.duckdb")
    con = analysis.connect(store / "rebuilt.duckdb")
    machine = duckdb.connect(str(store / "results.duckdb"), read_only=True)
    insert(con, machine.execute("SELECT * FROM results WHERE scorer NOT LIKE 'human:%'").df()
           .to_dict("records"))
    machine.close()
    assert labels.insert_human_rows(con, store) == len(imported)
    con.close()
    pd.testing.assert_frame_equal(human_rows(store / "rebuilt.duckdb"), imported)


@pytest.mark.parametrize("cmd", [["labels", "export"], ["labels", "import"]], ids=" ".join)
def test_labels_commands_have_help(cmd, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(cmd + ["--help"])
    assert exit_.value.code == 0
    assert "usage: robust-edit " + " ".join(cmd) in capsys.readouterr().out


def test_a_sweeps_database_build_includes_the_stores_labels(swept):  # noqa: F811
    """results.build_database, as the aggregate stage runs it, adds the labels stored under
    <storage>/labels as human rows."""
    from robust_edit.pipeline.results import build_database

    spec, graph, store = swept
    gen = graph.by_kind("generate")[0]
    (store.root / "labels").mkdir()
    pd.DataFrame({"annotator": "ann", "generate_key": gen.key, "item": [0, 1],
                  "label": ["unsafe", "undecidable"]}).to_parquet(store.root / "labels" / "ann.parquet")
    rows = human_rows(build_database(graph, store, spec, "aggregate-key"))
    assert len(rows) == 2 and set(rows["generate_key"]) == {gen.key}
    assert rows[["item", "scorer", "label", "value"]].values.tolist() == [
        [0, "human:ann", "unsafe", 1.0], [1, "human:ann", "undecidable", 0.0]]
