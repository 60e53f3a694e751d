-- The paper's headline findings (STUDY.md), each evaluated on this sweep's own results:
-- a statistic per bootstrap resample, its estimate and 95 % interval, and a verdict
-- against the stated bound: supported when the whole interval is on the claimed side,
-- contradicted when it is wholly on the other side, undecided otherwise. Delta is the
-- task's headline Delta per cell (headline_b: efficacy, mean delta, unsafe rate).
WITH per_ft AS (
    SELECT b, ft_method, avg(delta) AS d FROM headline_b GROUP BY ALL),
stats AS (
    SELECT 1 AS n, 'Edits mostly persist' AS finding,
           'mean Δ over all cells' AS statistic, '<' AS side, 0.2 AS bound, b, avg(delta) AS x
    FROM headline_b GROUP BY b
    UNION ALL
    SELECT 2, 'DreamBooth preserves most', 'min over other methods of Δ(method) − Δ(DreamBooth)',
           '>', 0.0, b, min(d) FILTER (WHERE ft_method <> 'dreambooth')
                        - max(d) FILTER (WHERE ft_method = 'dreambooth')
    FROM per_ft GROUP BY b
    UNION ALL
    SELECT 3, 'Full and DoRA remove most',
           'min(Δ full, Δ DoRA) − max(Δ LoRA, Δ DreamBooth)', '>', 0.0, b,
           min(d) FILTER (WHERE ft_method IN ('full', 'dora'))
           - max(d) FILTER (WHERE ft_method IN ('lora', 'dreambooth'))
    FROM per_ft GROUP BY b
    UNION ALL
    SELECT 4, 'Unsafe removal holds or strengthens after style fine-tuning',
           'mean unsafe rate M_ed_ft − M_ed (full, LoRA, DoRA)', '<', 0.05, b,
           avg("M_ed_ft" - "M_ed")
    FROM headline_b WHERE task = 'unsafe' AND ft_method <> 'dreambooth' GROUP BY b
    UNION ALL
    SELECT 5, 'UCE is more robust than ReFACT', 'mean Δ(ReFACT) − mean Δ(UCE)', '>', 0.0, b,
           avg(delta) FILTER (WHERE method = 'refact') - avg(delta) FILTER (WHERE method = 'uce')
    FROM headline_b GROUP BY b)
SELECT finding, statistic || ' ' || side || ' ' || bound AS claim,
       est(x, b) AS estimate, lo95(x, b) AS "estimate lo", hi95(x, b) AS "estimate hi",
       CASE WHEN est(x, b) IS NULL THEN 'not in this sweep'
            WHEN (side = '<' AND hi95(x, b) < bound) OR (side = '>' AND lo95(x, b) > bound)
                THEN 'supported'
            WHEN (side = '<' AND lo95(x, b) > bound) OR (side = '>' AND hi95(x, b) < bound)
                THEN 'contradicted'
            ELSE 'undecided' END AS verdict
FROM stats GROUP BY n, finding, statistic, side, bound ORDER BY n;
