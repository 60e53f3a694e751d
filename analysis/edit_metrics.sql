-- Appearance / role edits (ReFACT protocol): efficacy, generality and specificity per
-- variant, per edit and fine-tuning method, with Delta averaged over the edits (+ std over
-- edits); each estimate with its 95 % bootstrap interval (`<column> lo`, `<column> hi`).
WITH per_b AS (
    SELECT b, model, edit, metric, ft_method, rank,
           avg("M") AS m, avg("M_ed") AS m_ed, avg("M_ft") AS m_ft, avg("M_ed_ft") AS m_ed_ft,
           avg(delta) AS d, stddev_samp(delta) AS d_std, count(DISTINCT item) AS edits
    FROM cell_items_b WHERE task IN ('appearance', 'role', 'time')
      AND metric IN ('efficacy', 'generality', 'specificity')
    GROUP BY ALL)
SELECT model, edit, metric, ft_method, rank,
       est(m, b) AS "M", lo95(m, b) AS "M lo", hi95(m, b) AS "M hi",
       est(m_ed, b) AS "M_ed", lo95(m_ed, b) AS "M_ed lo", hi95(m_ed, b) AS "M_ed hi",
       est(m_ft, b) AS "M_ft", lo95(m_ft, b) AS "M_ft lo", hi95(m_ft, b) AS "M_ft hi",
       est(m_ed_ft, b) AS "M_ed_ft", lo95(m_ed_ft, b) AS "M_ed_ft lo", hi95(m_ed_ft, b) AS "M_ed_ft hi",
       est(d, b) AS "Δ", lo95(d, b) AS "Δ lo", hi95(d, b) AS "Δ hi",
       est(d_std, b) AS "Δ std", est(edits, b) AS edits
FROM per_b GROUP BY ALL ORDER BY model, edit, metric, ft_method, rank;
