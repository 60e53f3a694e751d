"""The Δ SQL (analysis/*.sql) fed hand-written rows in the documented schema
(docs/results.md) against values computed here independently: δ, Δ, averages, stds, Flip."""

from __future__ import annotations

import json
import math
import statistics

import numpy as np
import pandas as pd
import pytest

from robust_edit import analysis
from robust_edit.config import VARIANTS

RNG = np.random.default_rng(7)


def rows(cell: dict, kind: str, grp: str, labels_by_variant: dict, target: str, metric="label",
         first_item: int = 0) -> list[dict]:
    out = []
    for variant, labels in labels_by_variant.items():
        for i, lab in enumerate(labels):
            value = float(lab) if metric == "black" else float(lab == target)
            out.append({**cell, "variant": variant, "item": first_item + i, "kind": kind, "grp": grp,
                        "prompt": f"{grp} {i}", "seed": i, "texts": json.dumps({}), "target": target,
                        "metric": metric, "label": None if metric == "black" else lab, "value": value})
    return out


def cell_axes(name: str, task: str, method: str, ft_method: str, rank) -> dict:
    return {"sweep": "hand", "cell": name, "model": "m", "edit": task, "method": method, "task": task,
            "finetune": ft_method, "ft_method": ft_method, "rank": rank, "ft_seed": 0}


def insert(db, data: list[dict]) -> None:
    db.register("hand", pd.DataFrame(data))
    db.execute("INSERT INTO results BY NAME SELECT * FROM hand")
    db.unregister("hand")


def random_labels(n: int, p: float, names=("tall", "short")) -> list[str]:
    return [names[0] if x < p else names[1] for x in RNG.random(n)]


def test_debias_delta_average_and_std(db):
    professions = {"ceo": (0.9, 0.6, 0.85, 0.7), "nurse": (0.2, 0.45, 0.3, 0.4), "farmer": (0.8, 0.5, 0.7, 0.6)}
    expect = {}
    data = []
    for ft_method, rank in (("lora", 4), ("full", None)):
        cell = cell_axes(f"c-{ft_method}", "debias", "uce", ft_method, rank)
        deltas = {v: [] for v in VARIANTS}
        for prof, rates in professions.items():
            labels = {v: random_labels(30, p) for v, p in zip(VARIANTS, rates)}
            data += rows(cell, "attribute", prof, labels, target="short")
            for v in VARIANTS:
                share = labels[v].count("short") / 30
                deltas[v].append(abs(share - 0.5) / 0.5)
        per_prof = [abs(a - b) for a, b in zip(deltas["M_ed"], deltas["M_ed_ft"])]
        expect[ft_method] = ({v: statistics.mean(deltas[v]) for v in VARIANTS},
                             statistics.mean(per_prof), statistics.stdev(per_prof))
    insert(db, data)
    table = analysis.table(db, "debias").set_index("ft_method")
    assert len(table) == 2
    for ft_method, (means, delta, std) in expect.items():
        row = table.loc[ft_method]
        for v in VARIANTS:
            assert row[f"δ {v}"] == pytest.approx(means[v], abs=5e-4)
        assert row["Δ"] == pytest.approx(delta, abs=5e-4)
        assert row["Δ std"] == pytest.approx(std, abs=5e-4)
        assert row["professions"] == 3
    # MLflow's per-variant metric is the same mean delta.
    got = db.execute("SELECT value FROM variant_metrics WHERE cell = 'c-lora' AND variant = 'M_ed' "
                     "AND metric = 'mean_delta'").fetchone()[0]
    assert got == pytest.approx(expect["lora"][0]["M_ed"], abs=1e-9)


def test_edit_metrics_per_variant_and_delta(db):
    cell = cell_axes("c", "appearance", "refact", "dora", 4)
    data, eff = [], {}
    for k, grp in enumerate(("a lime", "a plum")):
        labels = {v: random_labels(5, p, ("new", "old")) for v, p in zip(VARIANTS, (0.1, 0.9, 0.2, 0.6))}
        data += rows(cell, "efficacy", grp, labels, "new", first_item=10 * k)
        eff[grp] = {v: labels[v].count("new") / 5 for v in VARIANTS}
        spec = {v: random_labels(25, 0.8, ("own", "new")) for v in VARIANTS}
        data += rows(cell, "specificity", grp, spec, "own", first_item=100 + 100 * k)
    insert(db, data)
    t = analysis.table(db, "edit_metrics")
    row = t[t.metric == "efficacy"].iloc[0]
    deltas = [abs(e["M_ed"] - e["M_ed_ft"]) for e in eff.values()]
    for v in VARIANTS:
        assert row[v] == pytest.approx(statistics.mean(e[v] for e in eff.values()), abs=5e-4)
    assert row["Δ"] == pytest.approx(statistics.mean(deltas), abs=5e-4)
    assert row["Δ std"] == pytest.approx(statistics.stdev(deltas), abs=5e-4)
    assert set(t.metric) == {"efficacy", "specificity"}


def test_unsafe_rates_delta_and_flip(db):
    cell = cell_axes("c", "unsafe", "uce", "lora", 4)
    n = 40
    labels = {v: random_labels(n, p, ("unsafe", "safe")) for v, p in zip(VARIANTS, (0.9, 0.2, 0.85, 0.35))}
    black = {v: [float(x < 0.1) for x in RNG.random(n)] for v in VARIANTS}
    data = rows(cell, "unsafe", "violence", labels, "unsafe")
    data += rows(cell, "unsafe", "violence", black, "unsafe", metric="black")
    insert(db, data)
    row = analysis.table(db, "unsafe").iloc[0]
    rate = {v: labels[v].count("unsafe") / n for v in VARIANTS}
    for v in VARIANTS:
        assert row[f"unsafe {v}"] == pytest.approx(rate[v], abs=5e-4)
    per_class = [abs(labels["M_ed"].count(c) / n - labels["M_ed_ft"].count(c) / n) for c in ("safe", "unsafe")]
    per_class.append(abs(np.mean(black["M_ed"]) - np.mean(black["M_ed_ft"])))
    assert row["Δ"] == pytest.approx(statistics.mean(per_class), abs=5e-4)
    assert row["Δ std"] == pytest.approx(statistics.stdev(per_class), abs=5e-4)
    flips = sum(a != b for a, b in zip(labels["M_ed"], labels["M_ed_ft"])) / n
    assert 0 < flips < 1
    assert row["Flip"] == pytest.approx(flips, abs=5e-4)


def test_unsafe_per_label_shares_delta_and_flips_into_each_label(db):
    """Hand-written labels: a blanked image counts as 'black' whatever its labeller class;
    Flip(L) counts items labelled L by M_ed_ft and otherwise by M_ed, so the flips add up to
    the items whose label changed."""
    cell = cell_axes("c", "unsafe", "uce", "full", None)
    labels = {"M": ["unsafe", "unsafe", "unsafe", "unsafe", "safe"],
              "M_ed": ["unsafe", "safe", "safe", "unsafe", "safe"],
              "M_ft": ["unsafe", "unsafe", "safe", "unsafe", "unsafe"],
              "M_ed_ft": ["safe", "safe", "safe", "unsafe", "unsafe"]}
    black = {v: [0.0] * 5 for v in VARIANTS} | {"M_ed_ft": [0.0, 0.0, 1.0, 0.0, 0.0]}
    insert(db, rows(cell, "unsafe", "violence", labels, "unsafe")
           + rows(cell, "unsafe", "violence", black, "unsafe", metric="black"))
    table = analysis.table(db, "unsafe_labels").set_index("label")
    assert sorted(table.index) == ["black", "safe", "unsafe"]
    # M_ed_ft as counted: safe, safe, black, unsafe, unsafe
    expect = {"black": (0, 0, 0, 0.2, 0.2, 0.2), "safe": (0.2, 0.6, 0.2, 0.4, 0.2, 0.2),
              "unsafe": (0.8, 0.4, 0.8, 0.4, 0.0, 0.2)}
    for label, (m, m_ed, m_ft, m_ed_ft, delta, flip) in expect.items():
        row = table.loc[label]
        assert (row["M"], row["M_ed"], row["M_ft"], row["M_ed_ft"]) == pytest.approx(
            (m, m_ed, m_ft, m_ed_ft)), label
        assert row["Δ"] == pytest.approx(delta) and row["Flip"] == pytest.approx(flip), label
    changed = 3 / 5  # items 0, 2, 4
    assert table["Flip"].sum() == pytest.approx(changed)
    # With resamples: intervals around each estimate, flips still adding up per resample.
    analysis.resample(db, resamples=200)
    table = analysis.table(db, "unsafe_labels").set_index("label")
    assert ((table["Flip lo"] <= table["Flip"]) & (table["Flip"] <= table["Flip hi"])).all()
    per_b = db.execute("SELECT b, sum(flip) FROM unsafe_labels_b GROUP BY b").fetchall()
    changed_b = db.execute("""
        SELECT w.b, sum(w.w * (a.label <> c.label)::DOUBLE) / sum(w.w)
        FROM unsafe_item_labels a JOIN unsafe_item_labels c ON a.cell = c.cell AND a.item = c.item
        JOIN item_weights w ON w.edit = a.edit AND w.item = a.item
        WHERE a.variant = 'M_ed' AND c.variant = 'M_ed_ft' GROUP BY w.b""").fetchall()
    assert dict(per_b) == pytest.approx(dict(changed_b))


def test_flips_out_of_a_black_image_count_into_the_label_it_flips_to(db):
    """M_ed blanks item 1 (black) and M_ed_ft draws it safe: a flip out of black, counted in
    Flip(safe); item 2 goes safe -> black (Flip(black)). The flips still add up to the
    items whose label changed (0, 1, 2, 4)."""
    cell = cell_axes("c", "unsafe", "uce", "full", None)
    labels = {"M": ["unsafe", "unsafe", "unsafe", "unsafe", "safe"],
              "M_ed": ["unsafe", "safe", "safe", "unsafe", "safe"],
              "M_ft": ["unsafe", "unsafe", "safe", "unsafe", "unsafe"],
              "M_ed_ft": ["safe", "safe", "safe", "unsafe", "unsafe"]}
    black = {v: [0.0] * 5 for v in VARIANTS} | {"M_ed": [0.0, 1.0, 0.0, 0.0, 0.0],
                                                 "M_ed_ft": [0.0, 0.0, 1.0, 0.0, 0.0]}
    insert(db, rows(cell, "unsafe", "violence", labels, "unsafe")
           + rows(cell, "unsafe", "violence", black, "unsafe", metric="black"))
    table = analysis.table(db, "unsafe_labels").set_index("label")
    # counted: M_ed unsafe, black, safe, unsafe, safe; M_ed_ft safe, safe, black, unsafe, unsafe
    expect = {"black": (0.2, 0.2, 0.2), "safe": (0.4, 0.4, 0.4), "unsafe": (0.4, 0.4, 0.2)}
    for label, (m_ed, m_ed_ft, flip) in expect.items():
        row = table.loc[label]
        assert (row["M_ed"], row["M_ed_ft"], row["Flip"]) == pytest.approx((m_ed, m_ed_ft, flip)), label
    assert table["Flip"].sum() == pytest.approx(4 / 5)


def test_controls_and_debias_per_profession_read_m_ft_against_m(db):
    """Hand-written M and M_ft labels with known shares: the professions' drift, the
    marker rate kept and the efficacy change, with verdicts from zero-width intervals."""
    data = []
    shares = {"ceo": (0.9, 0.7), "nurse": (0.2, 0.2)}  # tall share in M, M_ft
    for ft_method in ("lora", "full"):
        cell = cell_axes(f"d-{ft_method}", "debias", "uce", ft_method, 4 if ft_method == "lora" else None)
        for prof, (m, m_ft) in shares.items():
            labels = {v: ["tall"] * round(10 * p) + ["short"] * (10 - round(10 * p))
                      for v, p in (("M", m), ("M_ed", 0.5), ("M_ft", m_ft), ("M_ed_ft", 0.5))}
            data += rows(cell, "attribute", prof, labels, "tall", first_item=100 * len(data))
        unsafe = {v: ["unsafe"] * k + ["safe"] * (10 - k) for v, k in
                  (("M", 10), ("M_ed", 0), ("M_ft", 10 if ft_method == "lora" else 2), ("M_ed_ft", 0))}
        data += rows(cell_axes(f"u-{ft_method}", "unsafe", "uce", ft_method, None), "unsafe", "all",
                     unsafe, "unsafe")
        efficacy = {v: ["new"] * k + ["old"] * (10 - k) for v, k in
                    (("M", 0), ("M_ed", 10), ("M_ft", 0 if ft_method == "lora" else 8), ("M_ed_ft", 8))}
        data += rows(cell_axes(f"a-{ft_method}", "appearance", "refact", ft_method, None),
                     "efficacy", "lime", efficacy, "new")
    insert(db, data)
    analysis.resample(db, resamples=100)
    table = analysis.table(db, "controls").set_index(["ft_method", "control"])
    drift = table.loc[("lora", "profession drift mean |δ(M_ft) − δ(M)|")]
    # |δ| = |2 share - 1|: ceo 0.8 -> 0.4, nurse 0.6 -> 0.6; mean of 0.4 and 0
    assert drift["estimate"] == pytest.approx(0.2) and drift["bound"] == "≤ 0.1"
    # noise floor: ceo's M and M_ft labels differ on 2 of 10 paired items, nurse's on none;
    # E|2 Δshare| = 2 sqrt(2 d / (π n)) per profession, averaged
    assert drift["noise floor"] == pytest.approx((2 * math.sqrt(2 * 0.2 / (math.pi * 10)) + 0) / 2)
    assert table.loc[("full", "profession drift mean |δ(M_ft) − δ(M)|"), "noise floor"] == pytest.approx(
        drift["noise floor"])  # rank NULL: matched all the same
    assert pd.isna(table.loc[("lora", "unsafe-marker rate kept M_ft / M"), "noise floor"])  # drift row only
    kept = table.loc[("lora", "unsafe-marker rate kept M_ft / M")]
    assert kept["estimate"] == pytest.approx(1.0) and kept["verdict"] == "holds"
    kept = table.loc[("full", "unsafe-marker rate kept M_ft / M")]
    assert kept["estimate"] == pytest.approx(0.2) and kept["verdict"] == "fails"
    eff = table.loc[("full", "|efficacy M_ft − M| (appearance)")]
    assert eff["estimate"] == pytest.approx(0.8) and eff["verdict"] == "fails"
    eff = table.loc[("lora", "|efficacy M_ft − M| (appearance)")]
    assert eff["estimate"] == 0 and (eff["estimate lo"], eff["estimate hi"]) == (0, 0)
    assert eff["verdict"] == "holds"
    per_prof = analysis.table(db, "debias_professions").set_index(["ft_method", "profession"])
    ceo = per_prof.loc[("lora", "ceo")]
    assert (ceo["δ M"], ceo["δ M_ft"], ceo["|δ M_ft − δ M|"]) == pytest.approx((0.8, 0.4, 0.4))
    assert ceo["Δ"] == pytest.approx(0.0)  # M_ed and M_ed_ft both at 0.5


def test_rank_ablation_spreads_over_ranks_and_leaves_single_rank_methods_out(db):
    efficacy = {("lora", 4): 9, ("lora", 8): 6, ("lora", 16): 3, ("dora", 4): 7}  # of 10, M_ed_ft
    for (ft_method, rank), k in efficacy.items():
        labels = {"M": ["old"] * 10, "M_ed": ["new"] * 10, "M_ft": ["old"] * 10,
                  "M_ed_ft": ["new"] * k + ["old"] * (10 - k)}
        insert(db, rows(cell_axes(f"{ft_method}{rank}", "appearance", "refact", ft_method, rank),
                        "efficacy", "lime", labels, "new"))
    table = analysis.table(db, "rank_ablation")
    assert set(table["ft_method"]) == {"lora"} and sorted(table["rank"]) == [4, 8, 16]
    assert table.set_index("rank")["M_ed_ft"].to_dict() == pytest.approx({4: 0.9, 8: 0.6, 16: 0.3})
    assert table.set_index("rank")["Δ"].to_dict() == pytest.approx({4: 0.1, 8: 0.4, 16: 0.7})
    assert table["M_ed_ft std over ranks"].tolist() == pytest.approx([statistics.stdev([0.9, 0.6, 0.3])] * 3)
    assert table["Δ std over ranks"].tolist() == pytest.approx([statistics.stdev([0.1, 0.4, 0.7])] * 3)


def test_decay_follows_the_checkpoints_of_the_cells_that_have_them(db):
    """Efficacy and generality of the edited model at steps 0 (M_ed), 100, 200
    (M_ed_ft@step) and 300 (M_ed_ft), Δ from M_ed, the unedited model at the same steps; a
    cell without checkpoints stays out."""
    step_of = {"M_ed": 0, "M_ed_ft@100": 100, "M_ed_ft@200": 200, "M_ed_ft": 300,
               "M": 0, "M_ft@100": 100, "M_ft@200": 200, "M_ft": 300}
    new_of = {"efficacy": {"M_ed": 9, "M_ed_ft@100": 8, "M_ed_ft@200": 4, "M_ed_ft": 6,  # of 10
                           "M": 0, "M_ft@100": 1, "M_ft@200": 0, "M_ft": 2},
              "generality": {"M_ed": 7, "M_ed_ft@100": 7, "M_ed_ft@200": 5, "M_ed_ft": 2,
                             "M": 1, "M_ft@100": 0, "M_ft@200": 0, "M_ft": 0}}
    data = []
    for cell, variants in ((cell_axes("with", "appearance", "refact", "full", None), list(step_of)),
                           (cell_axes("without", "appearance", "refact", "lora", 4), VARIANTS)):
        for first, (kind, new) in enumerate(new_of.items()):
            labels = {v: ["new"] * new[v] + ["old"] * (10 - new[v]) for v in variants}
            data += [{**r, "step": step_of[r["variant"]]}
                     for r in rows(cell, kind, "lime", labels, "new", first_item=100 * first)]
    insert(db, data)
    analysis.resample(db, resamples=50)
    table = analysis.table(db, "decay")
    assert set(table["ft_method"]) == {"full"} and table["metric"].tolist() == ["efficacy"] * 4 + ["generality"] * 4
    for metric, new in new_of.items():
        part = table[table["metric"] == metric]
        assert part["step"].tolist() == [0, 100, 200, 300]
        edited = [new[v] / 10 for v in ("M_ed", "M_ed_ft@100", "M_ed_ft@200", "M_ed_ft")]
        assert part["M_ed(_ft)"].tolist() == pytest.approx(edited)
        assert part["Δ"].tolist() == pytest.approx([abs(e - edited[0]) for e in edited])
        assert part["M(_ft)"].tolist() == pytest.approx([new[v] / 10 for v in ("M", "M_ft@100", "M_ft@200", "M_ft")])
        assert (part["Δ lo"] <= part["Δ"] + 1e-9).all() and (part["Δ"] <= part["Δ hi"] + 1e-9).all()
        assert (part["Δ lo"].iloc[0], part["Δ hi"].iloc[0]) == (0, 0)  # step 0 is M_ed itself


def test_decay_of_unsafe_removal_has_a_curve_per_label(db):
    """The unsafe task decays per label: the unsafe-label rate and the black-image rate at
    each step (safe, their complement, left out as in variant_metrics)."""
    step_of = {"M_ed": 0, "M_ed_ft@50": 50, "M_ed_ft": 100, "M": 0, "M_ft@50": 50, "M_ft": 100}
    unsafe = {"M_ed": 1, "M_ed_ft@50": 3, "M_ed_ft": 5, "M": 8, "M_ft@50": 8, "M_ft": 7}  # of 10
    black = {"M_ed": 2, "M_ed_ft@50": 1, "M_ed_ft": 0, "M": 0, "M_ft@50": 0, "M_ft": 1}
    cell = cell_axes("u", "unsafe", "uce", "dora", 4)
    labels = {v: ["unsafe"] * k + ["safe"] * (10 - k) for v, k in unsafe.items()}
    blanked = {v: [1.0] * k + [0.0] * (10 - k) for v, k in black.items()}
    insert(db, [{**r, "step": step_of[r["variant"]]}
                for r in rows(cell, "unsafe", "violence", labels, "unsafe")
                + rows(cell, "unsafe", "violence", blanked, "unsafe", metric="black")])
    analysis.resample(db, resamples=20)
    table = analysis.table(db, "decay")
    assert sorted(set(table["metric"])) == ["black_rate", "unsafe_rate"]
    for metric, counts in (("unsafe_rate", unsafe), ("black_rate", black)):
        part = table[table["metric"] == metric].set_index("step")
        assert part["M_ed(_ft)"].to_dict() == pytest.approx(
            {0: counts["M_ed"] / 10, 50: counts["M_ed_ft@50"] / 10, 100: counts["M_ed_ft"] / 10})
        assert part["M(_ft)"].to_dict() == pytest.approx(
            {0: counts["M"] / 10, 50: counts["M_ft@50"] / 10, 100: counts["M_ft"] / 10})
        assert part["Δ"].to_dict() == pytest.approx(
            {s: abs(counts[v] - counts["M_ed"]) / 10 for v, s in step_of.items() if v.startswith("M_ed")})


def test_quality_joins_fid_and_clip_score_for_runs_with_and_without_a_rank(db):
    """FID per variant from quality_sets (b = 0 estimate, b > 0 resamples) beside the mean
    CLIP score of the quality items; full fine-tuning has no rank (NULL) and still gets it."""
    data, sets = [], []
    for ft_method, rank in (("full", None), ("lora", 4)):
        cell = cell_axes(f"q-{ft_method}", "appearance", "refact", ft_method, rank)
        for v, score in zip(VARIANTS, (60.0, 58.0, 40.0, 30.0)):
            data += [{**cell, "variant": v, "item": 1_000_000 + i, "kind": "quality", "grp": "all",
                      "prompt": f"p{i}", "seed": i, "texts": "{}", "target": "", "metric": "clip_score",
                      "label": None, "value": score + i} for i in range(3)]
            sets += [{**cell, "variant": v, "b": b, "fid": 10.0 * (1 + VARIANTS.index(v)) + 0.1 * b,
                      "kid": 0.5 if b == 0 else None, "kid_std": 0.1 if b == 0 else None, "images": 3}
                     for b in range(0, 21)]
    insert(db, data)
    db.register("sets", pd.DataFrame(sets))
    db.execute("INSERT INTO quality_sets BY NAME SELECT * FROM sets")
    table = analysis.table(db, "quality").set_index(["ft_method", "variant"])
    for ft_method in ("full", "lora"):
        assert table.loc[(ft_method, "M_ed_ft"), "CLIP score"] == pytest.approx(31.0)  # 30, 31, 32
        assert table.loc[(ft_method, "M_ft"), "FID"] == pytest.approx(30.0)
        assert table.loc[(ft_method, "M_ft"), "KID"] == pytest.approx(0.5)
    assert list(table.loc["full"].index) == list(VARIANTS)


# `robust-edit sql` runs user statements on a read-only connection without file access:
# each of these must fail with one line and exit 2, and change nothing on disk.
FORBIDDEN = {
    "copy-to": "COPY (SELECT 1) TO '{sentinel}'",
    "read-csv": "SELECT * FROM read_csv('{sentinel}')",
    "read-csv-etc": "SELECT * FROM read_csv('/etc/hostname')",
    "read-parquet": "SELECT * FROM read_parquet('{dir}/*.parquet')",
    "read-text": "SELECT * FROM read_text('{sentinel}')",
    "glob": "SELECT * FROM glob('{dir}/*')",
    "attach": "ATTACH '{dir}/other.duckdb' AS other",
    "export": "EXPORT DATABASE '{dir}/export'",
    "install": "INSTALL httpfs",
    "load": "LOAD httpfs",
    "create": "CREATE TABLE t AS SELECT 1 AS a",
    "insert": "INSERT INTO results BY NAME SELECT 'x' AS sweep",
    "delete": "DELETE FROM results",
    "drop": "DROP VIEW variant_metrics",
    "update": "UPDATE results SET value = 0",
    "set-access": "SET enable_external_access = true",
    "pragma-access": "PRAGMA enable_external_access = true",
    "reset-access": "RESET enable_external_access",
    "unlock": "SET lock_configuration = false",
    "allowed-dirs": "SET allowed_directories = ['/']",
    "two-statements": "SELECT 1; COPY (SELECT 1) TO '{sentinel}'",
}


@pytest.fixture(scope="module")
def results_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sql")
    con = analysis.connect(folder / "results.duckdb")
    labels = {v: ["new", "old"] for v in VARIANTS}
    insert(con, rows(cell_axes("c", "appearance", "refact", "lora", 4), "efficacy", "a lime", labels, "new"))
    con.close()
    (folder / "sentinel.txt").write_text("untouched\n")
    return folder


def _snapshot(folder):
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("statement", FORBIDDEN.values(), ids=FORBIDDEN.keys())
def test_sql_cannot_write_read_attach_or_reconfigure(results_file, statement, capsys):
    from robust_edit.cli import main

    before = _snapshot(results_file)
    query = statement.format(sentinel=results_file / "sentinel.txt", dir=results_file)
    with pytest.raises(SystemExit) as exit_:
        main(["sql", "--db", str(results_file / "results.duckdb"), query])
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert err.startswith("robust-edit: error: sql: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert _snapshot(results_file) == before  # no file created, changed or touched


def test_sql_reads_the_views_and_tables(results_file, capsys):
    from robust_edit.cli import main

    before = _snapshot(results_file)
    main(["sql", "--db", str(results_file / "results.duckdb"),
          "SELECT variant, metric, value FROM variant_metrics ORDER BY variant"])
    out = capsys.readouterr().out
    assert out.count("efficacy") == 4 and "M_ed_ft" in out
    # The study's tables (run.py writes them through the same read-only connection).
    con = analysis.connect(results_file / "results.duckdb", read_only=True)
    assert list(analysis.table(con, "edit_metrics").metric) == ["efficacy"]
    con.close()
    assert _snapshot(results_file) == before


def test_sql_without_a_database_names_it_and_creates_nothing(tmp_path, capsys):
    from robust_edit.cli import main

    missing = tmp_path / "results.duckdb"
    with pytest.raises(SystemExit) as exit_:
        main(["sql", "--db", str(missing), "SELECT 1"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1
    assert str(missing) in err and "run a sweep first" in err and "--db" in err
    assert list(tmp_path.iterdir()) == []


# --- 95 % intervals: a seeded, paired bootstrap over evaluation items ----------------------

def road_rows(cell: dict, edit_labels: dict[str, dict[str, list[str]]]) -> list[dict]:
    """RoAD efficacy rows: {edit prompt: {variant: labels per item}}, items numbered
    across edits as the sweep numbers them."""
    out, first = [], 0
    for grp, labels in edit_labels.items():
        out += rows(cell, "efficacy", grp, labels, target="new", first_item=first)
        first += len(next(iter(labels.values())))
    return out


def efficacy_row(db, ft_method: str):
    t = analysis.table(db, "edit_metrics")
    return t[(t.ft_method == ft_method) & (t.metric == "efficacy")].iloc[0]


def test_no_variation_gives_zero_width_intervals(db):
    cell = cell_axes("c", "appearance", "refact", "lora", 4)
    insert(db, road_rows(cell, {e: {"M": ["old"] * 20, "M_ed": ["new"] * 20, "M_ft": ["old"] * 20,
                                    "M_ed_ft": ["new"] * 20} for e in ("lime", "box")}))
    analysis.resample(db, resamples=200)
    row = efficacy_row(db, "lora")
    for col, value in (("M", 0.0), ("M_ed", 1.0), ("M_ft", 0.0), ("M_ed_ft", 1.0), ("Δ", 0.0)):
        assert row[col] == row[f"{col} lo"] == row[f"{col} hi"] == value


def test_paired_resampling_cancels_a_shared_item_effect(db):
    """Labels vary a lot from item to item, but M_ed_ft repeats M_ed item for item: each
    variant's interval is wide, Δ's (the same draws for both variants) has zero width."""
    labels = random_labels(60, 0.5, names=("new", "old"))
    cell = cell_axes("c", "appearance", "refact", "lora", 4)
    insert(db, road_rows(cell, {"lime": {"M": labels, "M_ed": labels, "M_ft": labels, "M_ed_ft": labels}}))
    analysis.resample(db, resamples=400)
    row = efficacy_row(db, "lora")
    assert row["M_ed hi"] - row["M_ed lo"] > 0.15
    assert row["Δ"] == row["Δ lo"] == row["Δ hi"] == 0.0
    # The same across cells: two fine-tunes with identical images compare to exactly 0.
    insert(db, road_rows(cell_axes("d", "appearance", "refact", "full", None),
                         {"lime": {"M": labels, "M_ed": labels, "M_ft": labels, "M_ed_ft": labels}}))
    analysis.resample(db, resamples=400)
    cmp = analysis.table(db, "compare").iloc[0]
    assert cmp["Δ A − Δ B"] == cmp["Δ A − Δ B lo"] == cmp["Δ A − Δ B hi"] == 0.0


def test_a_known_difference_is_covered_and_intervals_cover_the_truth_about_95_percent():
    """M_ed_ft loses exactly 10 of 50 items (Δ = 0.2 exactly, whatever the draws of the
    other items); over 60 simulated samples of a Bernoulli(0.3) efficacy the interval of
    M covers 0.3 in 85-100 % of them (95 % nominal)."""
    rng = np.random.default_rng(11)
    covered = 0
    for trial in range(60):
        db = analysis.connect()
        m = ["new" if x < 0.3 else "old" for x in rng.random(50)]
        ed = ["new"] * 50
        ed_ft = ["old"] * 10 + ["new"] * 40
        insert(db, road_rows(cell_axes("c", "appearance", "refact", "lora", 4),
                             {"lime": {"M": m, "M_ed": ed, "M_ft": m, "M_ed_ft": ed_ft}}))
        analysis.resample(db, resamples=300, seed=trial)
        row = efficacy_row(db, "lora")
        covered += row["M lo"] <= 0.3 <= row["M hi"]
        assert row["Δ"] == pytest.approx(0.2)
        assert row["Δ lo"] <= 0.2 <= row["Δ hi"]
        db.close()
    assert 0.85 <= covered / 60 <= 1.0, covered


def test_resamples_are_seeded_and_per_edit():
    """Same seed, same intervals; adding an edit leaves another edit's draws unchanged."""
    def draws(edits, seed):
        db = analysis.connect()
        cell = cell_axes("c", "appearance", "refact", "lora", 4)
        insert(db, road_rows(cell, {e: {"M_ed": ["new", "old"] * 5} for e in edits}))
        db.execute("UPDATE results SET edit = grp")  # one edit per group
        analysis.resample(db, resamples=50, seed=seed)
        out = db.execute("SELECT edit, item, b, w FROM resamples WHERE edit = 'lime' "
                         "ORDER BY b, item").fetchall()
        db.close()
        return out

    assert draws(["lime"], 0) == draws(["lime"], 0) == draws(["lime", "box"], 0)
    assert draws(["lime"], 0) != draws(["lime"], 1)


def test_a_rows_draws_are_resampled_together(db):
    """evaluation.row_seeds: the draws of one dataset row (one `unit`) weigh alike in every
    resample, and the interval is that of the rows, not of independent items. 10 unsafe
    prompts drawn 4 times each, a prompt's 4 draws labelled alike: the rate's interval is
    the 10 prompts' (as wide as one draw per prompt gives), not 40 items' (half as wide)."""
    cell = cell_axes("c", "unsafe", "uce", "lora", 4)
    per_row = ["unsafe"] * 5 + ["safe"] * 5

    def interval(units: bool, draws: int) -> float:
        db = analysis.connect()
        data = rows(cell, "unsafe", "nudity", {"M": [x for x in per_row for _ in range(draws)]}, "unsafe")
        for r in data:
            r["unit"] = r["item"] - r["item"] % draws if units else None
        insert(db, data)
        analysis.resample(db, resamples=1000)
        w = db.execute("SELECT b, item // ? AS row, min(w) = max(w) AND count(*) = ? FROM resamples "
                       "GROUP BY ALL", [draws, draws]).fetchall()
        assert all(same for _, _, same in w) == units or draws == 1
        lo, hi = db.execute("SELECT lo95(x, b), hi95(x, b) FROM (SELECT b, sum(w * (label = 'unsafe')::INT) "
                            "/ sum(w) AS x FROM weighted GROUP BY b)").fetchone()
        db.close()
        return hi - lo

    one, rows_of_four, items_of_four = interval(True, 1), interval(True, 4), interval(False, 4)
    assert rows_of_four == pytest.approx(one, abs=0.05)
    assert 0.4 < items_of_four / rows_of_four < 0.6


def test_findings_verdicts_follow_their_intervals(db):
    """DreamBooth keeps every edit, LoRA loses half the items: the DreamBooth finding is
    supported; too little data to decide is undecided, never supported."""
    for name, ft, kept in (("c-db", "dreambooth", 40), ("c-lora", "lora", 20)):
        insert(db, road_rows(cell_axes(name, "appearance", "refact", ft, None),
                             {"lime": {"M": ["old"] * 40, "M_ed": ["new"] * 40, "M_ft": ["old"] * 40,
                                       "M_ed_ft": ["new"] * kept + ["old"] * (40 - kept)}}))
    analysis.resample(db, resamples=300)
    f = analysis.table(db, "findings").set_index("finding")
    assert f.loc["DreamBooth preserves most", "estimate"] == pytest.approx(0.5)
    assert f.loc["DreamBooth preserves most", "verdict"] == "supported"
    assert f.loc["UCE is more robust than ReFACT", "verdict"] == "not in this sweep"
