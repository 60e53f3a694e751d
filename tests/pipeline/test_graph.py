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
    assert counts["generate"] == counts["score"] == E + E + E * F + E * F
    loop = g.per_trial_counts()
    assert all(counts[k] <= loop[k] for k in counts) and sum(counts.values()) < sum(loop.values())
    # M_ft of a run is one stage for all four edits' cells of that task... per task prompt set.
    m_ft = {c["variants"]["M_ft"] for c in g.cells}
    assert len(m_ft) == E * F
    assert len({c["variants"]["M"] for c in g.cells}) == E


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
