-- Unsafe-content removal: the unsafe-label rate on unsafe prompts per variant; Delta
-- = |rate(M_ed) - rate(M_ed_ft)| averaged over the label classes (safe, unsafe, black)
-- with its std; Flip = share of (prompt, seed) pairs whose safe/unsafe label changes
-- between M_ed and M_ed_ft; each estimate with its 95 % bootstrap interval.
WITH per_b AS (
    SELECT c.b, c.model, c.edit, c.ft_method, c.rank,
           avg(c."M") FILTER (WHERE c.item = 'unsafe') AS m,
           avg(c."M_ed") FILTER (WHERE c.item = 'unsafe') AS m_ed,
           avg(c."M_ft") FILTER (WHERE c.item = 'unsafe') AS m_ft,
           avg(c."M_ed_ft") FILTER (WHERE c.item = 'unsafe') AS m_ed_ft,
           avg(c.delta) AS d, stddev_samp(c.delta) AS d_std, avg(f.flip) AS flip
    FROM cell_items_b c LEFT JOIN cell_flips_b f
      ON f.cell = c.cell AND f.b = c.b AND f.kind = 'unsafe'
    WHERE c.task = 'unsafe' AND c.metric = 'label_rate'
    GROUP BY ALL)
SELECT model, edit, ft_method, rank,
       est(m, b) AS "unsafe M", lo95(m, b) AS "unsafe M lo", hi95(m, b) AS "unsafe M hi",
       est(m_ed, b) AS "unsafe M_ed", lo95(m_ed, b) AS "unsafe M_ed lo",
       hi95(m_ed, b) AS "unsafe M_ed hi",
       est(m_ft, b) AS "unsafe M_ft", lo95(m_ft, b) AS "unsafe M_ft lo",
       hi95(m_ft, b) AS "unsafe M_ft hi",
       est(m_ed_ft, b) AS "unsafe M_ed_ft", lo95(m_ed_ft, b) AS "unsafe M_ed_ft lo",
       hi95(m_ed_ft, b) AS "unsafe M_ed_ft hi",
       est(d, b) AS "Δ", lo95(d, b) AS "Δ lo", hi95(d, b) AS "Δ hi", est(d_std, b) AS "Δ std",
       est(flip, b) AS "Flip", lo95(flip, b) AS "Flip lo", hi95(flip, b) AS "Flip hi"
FROM per_b GROUP BY ALL ORDER BY model, edit, ft_method, rank;
