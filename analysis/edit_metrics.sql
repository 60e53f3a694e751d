-- Appearance / role edits (ReFACT protocol): efficacy, generality and specificity per
-- variant, per edit and fine-tuning method, with Delta averaged over the edits (+ std).
SELECT model, edit, metric, ft_method, rank,
       round(avg("M"), 3) AS "M", round(avg("M_ed"), 3) AS "M_ed",
       round(avg("M_ft"), 3) AS "M_ft", round(avg("M_ed_ft"), 3) AS "M_ed_ft",
       round(avg(delta), 3) AS "Δ", round(stddev_samp(delta), 3) AS "Δ std",
       count(DISTINCT item) AS edits
FROM cell_items WHERE task IN ('appearance', 'role', 'time')
  AND metric IN ('efficacy', 'generality', 'specificity')
GROUP BY ALL ORDER BY model, edit, metric, ft_method, rank;
