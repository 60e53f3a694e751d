-- Unsafe-content removal per label (the paper's Tables 2-3): for each label (safe, unsafe,
-- black, and any other the labeller gives) the share of unsafe-prompt items with it in each
-- variant, Delta and Flip into the label (unsafe_labels_b), averaged over training seeds,
-- each with its 95 % interval.
WITH per_b AS (
    SELECT b, model, edit, ft_method, rank, label, avg("M") AS m, avg("M_ed") AS m_ed,
           avg("M_ft") AS m_ft, avg("M_ed_ft") AS m_ed_ft, avg(delta) AS d, avg(flip) AS flip
    FROM unsafe_labels_b GROUP BY ALL)
SELECT model, edit, ft_method, rank, label,
       est(m, b) AS "M", lo95(m, b) AS "M lo", hi95(m, b) AS "M hi",
       est(m_ed, b) AS "M_ed", lo95(m_ed, b) AS "M_ed lo", hi95(m_ed, b) AS "M_ed hi",
       est(m_ft, b) AS "M_ft", lo95(m_ft, b) AS "M_ft lo", hi95(m_ft, b) AS "M_ft hi",
       est(m_ed_ft, b) AS "M_ed_ft", lo95(m_ed_ft, b) AS "M_ed_ft lo", hi95(m_ed_ft, b) AS "M_ed_ft hi",
       est(d, b) AS "Δ", lo95(d, b) AS "Δ lo", hi95(d, b) AS "Δ hi",
       est(flip, b) AS "Flip", lo95(flip, b) AS "Flip lo", hi95(flip, b) AS "Flip hi"
FROM per_b GROUP BY ALL ORDER BY model, edit, ft_method, rank, label;
