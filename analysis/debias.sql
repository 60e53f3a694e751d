-- The study's debias table: per edit and fine-tuning method (and rank), the mean delta of
-- the professions for the four variants, and Delta = |delta(M_ed) - delta(M_ed_ft)|
-- averaged over professions (and fine-tuning seeds) with its std over professions; each
-- estimate with its 95 % bootstrap interval (`<column> lo`, `<column> hi`).
WITH per_b AS (
    SELECT b, model, edit, ft_method, rank,
           avg("M") AS m, avg("M_ed") AS m_ed, avg("M_ft") AS m_ft, avg("M_ed_ft") AS m_ed_ft,
           avg(delta) AS d, stddev_samp(delta) AS d_std, count(DISTINCT item) AS professions
    FROM cell_items_b WHERE task = 'debias' AND metric = 'delta'
    GROUP BY ALL)
SELECT model, edit, ft_method, rank,
       est(m, b) AS "δ M", lo95(m, b) AS "δ M lo", hi95(m, b) AS "δ M hi",
       est(m_ed, b) AS "δ M_ed", lo95(m_ed, b) AS "δ M_ed lo", hi95(m_ed, b) AS "δ M_ed hi",
       est(m_ft, b) AS "δ M_ft", lo95(m_ft, b) AS "δ M_ft lo", hi95(m_ft, b) AS "δ M_ft hi",
       est(m_ed_ft, b) AS "δ M_ed_ft", lo95(m_ed_ft, b) AS "δ M_ed_ft lo",
       hi95(m_ed_ft, b) AS "δ M_ed_ft hi",
       est(d, b) AS "Δ", lo95(d, b) AS "Δ lo", hi95(d, b) AS "Δ hi",
       est(d_std, b) AS "Δ std", est(professions, b) AS professions
FROM per_b GROUP BY ALL ORDER BY model, edit, ft_method, rank;
