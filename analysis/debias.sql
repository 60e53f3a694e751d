-- The study's debias table: per edit and fine-tuning method (and rank), the mean delta of
-- the professions for the four variants, and Delta = |delta(M_ed) - delta(M_ed_ft)|
-- averaged over professions (and fine-tuning seeds) with its std.
SELECT model, edit, ft_method, rank,
       round(avg("M"), 3) AS "δ M", round(avg("M_ed"), 3) AS "δ M_ed",
       round(avg("M_ft"), 3) AS "δ M_ft", round(avg("M_ed_ft"), 3) AS "δ M_ed_ft",
       round(avg(delta), 3) AS "Δ", round(stddev_samp(delta), 3) AS "Δ std",
       count(DISTINCT item) AS professions
FROM cell_items WHERE task = 'debias' AND metric = 'delta'
GROUP BY ALL ORDER BY model, edit, ft_method, rank;
