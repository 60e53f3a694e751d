-- Is Delta(A) larger than Delta(B)? Per model and edit, every pair of fine-tuning runs (a
-- fine-tune at one rank; training seeds averaged): Delta(A) - Delta(B) of the task's
-- headline metric (efficacy, mean delta, unsafe rate) with its 95 % bootstrap interval,
-- paired (both from the same item draws), and which one is larger where the interval
-- excludes 0.
WITH per_b AS (
    SELECT b, model, edit, task, metric, finetune || coalesce(' r' || rank, '') AS run,
           avg(delta) AS d
    FROM headline_b GROUP BY ALL)
SELECT a.model, a.edit, a.task, a.metric, a.run AS "A", o.run AS "B",
       est(a.d, a.b) AS "Δ A", est(o.d, a.b) AS "Δ B",
       est(a.d - o.d, a.b) AS "Δ A − Δ B", lo95(a.d - o.d, a.b) AS "Δ A − Δ B lo",
       hi95(a.d - o.d, a.b) AS "Δ A − Δ B hi",
       CASE WHEN lo95(a.d - o.d, a.b) > 0 THEN 'A larger'
            WHEN hi95(a.d - o.d, a.b) < 0 THEN 'B larger' ELSE 'undecided' END AS verdict
FROM per_b a JOIN per_b o ON a.b = o.b AND a.model = o.model AND a.edit = o.edit AND a.run < o.run
GROUP BY a.model, a.edit, a.task, a.metric, a.run, o.run ORDER BY a.model, a.edit, a.run, o.run;
