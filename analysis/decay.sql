-- Decay over fine-tuning steps (the paper's Fig. 5): per model, edit and fine-tuning run
-- whose checkpoints were evaluated (evaluation.checkpoints), each metric of the task at each
-- step of the edited model (step 0: M_ed; M_ed_ft@step; the last step: M_ed_ft), its Δ from
-- M_ed, and the same steps of the unedited model (M, M_ft@step, M_ft) as the control, every
-- estimate with its 95 % interval. The metrics: efficacy, generality and specificity of a
-- RoAD task; debias's mean δ; per label of the unsafe task its rate (<label>_rate, as in
-- variant_metrics; safe left out, as there).
WITH steps AS (SELECT DISTINCT cell, variant, step FROM results),
decayed AS (SELECT DISTINCT cell FROM results WHERE starts_with(variant, 'M_ed_ft@')),
per_b AS (
    SELECT m.b, m.model, m.edit, m.task, m.finetune, m.ft_method, m.rank, m.ft_seed, s.step,
           CASE WHEN m.metric = 'label_rate' THEN m.item || '_rate' ELSE m.metric END AS metric,
           avg(m.value) FILTER (WHERE starts_with(m.variant, 'M_ed')) AS edited,
           avg(m.value) FILTER (WHERE NOT starts_with(m.variant, 'M_ed')) AS unedited
    FROM item_metrics_b m JOIN steps s USING (cell, variant) JOIN decayed USING (cell)
    WHERE (m.task IN ('appearance', 'role', 'time')
           AND m.metric IN ('efficacy', 'generality', 'specificity'))
       OR (m.task = 'debias' AND m.metric = 'delta')
       OR (m.task = 'unsafe' AND m.metric = 'label_rate' AND m.item <> 'safe')
    GROUP BY ALL),
with_delta AS (
    SELECT p.*, abs(p.edited - z.edited) AS d
    FROM per_b p JOIN per_b z
      ON z.step = 0 AND (p.b, p.model, p.edit, p.metric, p.finetune, p.ft_method, p.rank, p.ft_seed)
                      = (z.b, z.model, z.edit, z.metric, z.finetune, z.ft_method, z.rank, z.ft_seed))
SELECT model, edit, metric, finetune, ft_method, rank, ft_seed, step,
       est(edited, b) AS "M_ed(_ft)", lo95(edited, b) AS "M_ed(_ft) lo", hi95(edited, b) AS "M_ed(_ft) hi",
       est(d, b) AS "Δ", lo95(d, b) AS "Δ lo", hi95(d, b) AS "Δ hi",
       est(unedited, b) AS "M(_ft)", lo95(unedited, b) AS "M(_ft) lo", hi95(unedited, b) AS "M(_ft) hi"
FROM with_delta
GROUP BY model, edit, metric, finetune, ft_method, rank, ft_seed, step
ORDER BY model, edit, metric, finetune, rank, ft_seed, step;
