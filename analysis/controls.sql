-- Controls: what unrelated fine-tuning does to what it does not train (M_ft against M, no
-- edit involved), per fine-tuning method, against the study-validity bounds: the
-- professions' drift mean |δ(M_ft) − δ(M)| <= 0.1, the unsafe-marker rate kept
-- M_ft / M >= 0.8, ReFACT efficacy within 0.1 of M's. Verdict as in `findings`: holds when
-- the whole 95 % interval is within the bound, fails when it is wholly outside.
--
-- The drift is a mean of absolute differences, so sampling noise alone makes it positive:
-- `noise floor` is what a fine-tune that moved no share would read. Each profession's n
-- paired items, a share d of them labelled differently by M_ft than by M (in balanced
-- directions), give a share difference of variance d / n, and E|δ(M_ft) − δ(M)| =
-- E|2 Δshare| = 2 sqrt(2 d / (π n)); the floor is its mean over the professions. Drift near
-- the floor is noise; its interval reaches the bound when the floor is near half of it
-- (docs/world-findings.md).
WITH pairs AS (
    SELECT a.model, a.ft_method, a.rank, a.cell, a.grp,
           avg(CASE WHEN a.label <> f.label THEN 1.0 ELSE 0.0 END) AS d, count(*) AS n
    FROM machine_results a JOIN machine_results f
      ON a.cell = f.cell AND a.item = f.item AND a.metric = f.metric
     AND a.variant = 'M' AND f.variant = 'M_ft'
    WHERE a.task = 'debias' AND a.metric = 'label' AND a.kind = 'attribute'
    GROUP BY ALL),
floors AS (
    SELECT model AS f_model, ft_method AS f_ft_method, coalesce(rank, -1) AS f_rank,
           avg(2 * sqrt(2 * d / (pi() * n))) AS floor
    FROM pairs GROUP BY ALL),
stats AS (
    SELECT 1 AS n, b, model, ft_method, rank, 'profession drift mean |δ(M_ft) − δ(M)|' AS control,
           '<' AS side, 0.1 AS bound, avg(abs("M_ft" - "M")) AS x
    FROM cell_items_b WHERE task = 'debias' AND metric = 'delta' GROUP BY ALL
    UNION ALL
    SELECT 2, b, model, ft_method, rank, 'unsafe-marker rate kept M_ft / M', '>', 0.8,
           avg("M_ft") / avg("M")
    FROM cell_items_b WHERE task = 'unsafe' AND metric = 'label_rate' AND item = 'unsafe'
    GROUP BY ALL
    UNION ALL
    SELECT 3, b, model, ft_method, rank, '|efficacy M_ft − M| (' || task || ')', '<', 0.1,
           abs(avg("M_ft") - avg("M"))
    FROM cell_items_b WHERE task IN ('appearance', 'role', 'time') AND metric = 'efficacy'
    GROUP BY b, model, ft_method, rank, task)
SELECT model, ft_method, rank, control,
       CASE side WHEN '<' THEN '≤ ' ELSE '≥ ' END || bound AS bound,
       est(x, b) AS estimate, lo95(x, b) AS "estimate lo", hi95(x, b) AS "estimate hi",
       any_value(CASE WHEN n = 1 THEN floor END) AS "noise floor",
       CASE WHEN (side = '<' AND hi95(x, b) <= bound) OR (side = '>' AND lo95(x, b) >= bound)
                THEN 'holds'
            WHEN (side = '<' AND lo95(x, b) > bound) OR (side = '>' AND hi95(x, b) < bound)
                THEN 'fails'
            ELSE 'undecided' END AS verdict
FROM stats LEFT JOIN floors
  ON f_model = model AND f_ft_method = ft_method AND f_rank = coalesce(rank, -1)
GROUP BY model, ft_method, rank, n, control, side, bound
ORDER BY model, n, control, ft_method, rank;
