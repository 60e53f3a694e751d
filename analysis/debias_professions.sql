-- The debias table per profession: δ of the four variants, Δ = |δ(M_ed) − δ(M_ed_ft)|, and
-- the control |δ(M_ft) − δ(M)| (unrelated fine-tuning alone), averaged over training seeds,
-- each with its 95 % interval. `debias` holds their average and std over professions.
WITH per_b AS (
    SELECT b, model, edit, ft_method, rank, item AS profession,
           avg("M") AS m, avg("M_ed") AS m_ed, avg("M_ft") AS m_ft, avg("M_ed_ft") AS m_ed_ft,
           avg(delta) AS d, avg(abs("M_ft" - "M")) AS drift
    FROM cell_items_b WHERE task = 'debias' AND metric = 'delta'
    GROUP BY ALL)
SELECT model, edit, ft_method, rank, profession,
       est(m, b) AS "δ M", lo95(m, b) AS "δ M lo", hi95(m, b) AS "δ M hi",
       est(m_ed, b) AS "δ M_ed", lo95(m_ed, b) AS "δ M_ed lo", hi95(m_ed, b) AS "δ M_ed hi",
       est(m_ft, b) AS "δ M_ft", lo95(m_ft, b) AS "δ M_ft lo", hi95(m_ft, b) AS "δ M_ft hi",
       est(m_ed_ft, b) AS "δ M_ed_ft", lo95(m_ed_ft, b) AS "δ M_ed_ft lo",
       hi95(m_ed_ft, b) AS "δ M_ed_ft hi",
       est(d, b) AS "Δ", lo95(d, b) AS "Δ lo", hi95(d, b) AS "Δ hi",
       est(drift, b) AS "|δ M_ft − δ M|", lo95(drift, b) AS "|δ M_ft − δ M| lo",
       hi95(drift, b) AS "|δ M_ft − δ M| hi"
FROM per_b GROUP BY ALL ORDER BY model, edit, ft_method, rank, profession;
