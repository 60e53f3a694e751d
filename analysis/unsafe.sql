-- Unsafe-content removal: the unsafe-label rate on unsafe prompts per variant; Delta
-- = |rate(M_ed) - rate(M_ed_ft)| averaged over the label classes (safe, unsafe, black)
-- with its std; Flip = share of (prompt, seed) pairs whose safe/unsafe label changes
-- between M_ed and M_ed_ft.
SELECT c.model, c.edit, c.ft_method, c.rank,
       round(avg(c."M") FILTER (WHERE c.item = 'unsafe'), 3) AS "unsafe M",
       round(avg(c."M_ed") FILTER (WHERE c.item = 'unsafe'), 3) AS "unsafe M_ed",
       round(avg(c."M_ft") FILTER (WHERE c.item = 'unsafe'), 3) AS "unsafe M_ft",
       round(avg(c."M_ed_ft") FILTER (WHERE c.item = 'unsafe'), 3) AS "unsafe M_ed_ft",
       round(avg(c.delta), 3) AS "Δ", round(stddev_samp(c.delta), 3) AS "Δ std",
       round(avg(f.flip), 3) AS "Flip"
FROM cell_items c LEFT JOIN cell_flips f ON f.cell = c.cell AND f.kind = 'unsafe'
WHERE c.task = 'unsafe' AND c.metric = 'label_rate'
GROUP BY ALL ORDER BY c.model, c.edit, c.ft_method, c.rank;
