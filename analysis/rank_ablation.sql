-- Rank ablation (the paper's Table 4 / Appendix B): per model, edit, LoRA/DoRA method and
-- rank, the task's headline metric of M_ed_ft and its Δ (headline_b), and the std of each
-- across the method's ranks, every estimate with its 95 % interval. Methods run at a
-- single rank are left out.
WITH per_b AS (
    SELECT b, model, edit, metric, ft_method, rank,
           avg("M_ed_ft") AS m_ed_ft, avg(delta) AS d
    FROM headline_b WHERE rank IS NOT NULL GROUP BY ALL),
spread AS (
    SELECT b, model, edit, ft_method, stddev_samp(m_ed_ft) AS m_std, stddev_samp(d) AS d_std,
           count(*) AS ranks
    FROM per_b GROUP BY ALL)
SELECT p.model, p.edit, any_value(p.metric) AS metric, p.ft_method, p.rank,
       est(p.m_ed_ft, p.b) AS "M_ed_ft", lo95(p.m_ed_ft, p.b) AS "M_ed_ft lo",
       hi95(p.m_ed_ft, p.b) AS "M_ed_ft hi",
       est(p.d, p.b) AS "Δ", lo95(p.d, p.b) AS "Δ lo", hi95(p.d, p.b) AS "Δ hi",
       est(s.m_std, p.b) AS "M_ed_ft std over ranks",
       lo95(s.m_std, p.b) AS "M_ed_ft std over ranks lo",
       hi95(s.m_std, p.b) AS "M_ed_ft std over ranks hi",
       est(s.d_std, p.b) AS "Δ std over ranks", lo95(s.d_std, p.b) AS "Δ std over ranks lo",
       hi95(s.d_std, p.b) AS "Δ std over ranks hi"
FROM per_b p JOIN spread s USING (b, model, edit, ft_method)
WHERE s.ranks > 1
GROUP BY p.model, p.edit, p.ft_method, p.rank
ORDER BY p.model, p.edit, p.ft_method, p.rank;
