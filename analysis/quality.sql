-- Image quality (the paper's §4.5): per model, edit, fine-tuning method and rank, each
-- variant's FID and KID against the quality prompts' reference images (quality_sets) and
-- its mean CLIP score on those prompts, FID and CLIP score with their 95 % intervals (FID's
-- from resamples centred on the estimate: robust_edit/pipeline/quality.py).
WITH fid AS (
    SELECT b, model, edit, ft_method, rank, variant, avg(fid) AS fid, avg(kid) AS kid,
           avg(kid_std) AS kid_std
    FROM quality_sets GROUP BY ALL),
clip AS (
    SELECT b, model, edit, ft_method, rank, variant, avg(value) AS clip
    FROM variant_metrics_b WHERE metric = 'quality_clip_score' GROUP BY ALL)
SELECT f.model, f.edit, f.ft_method, f.rank, f.variant,
       est(f.fid, f.b) AS "FID", lo95(f.fid, f.b) AS "FID lo", hi95(f.fid, f.b) AS "FID hi",
       est(f.kid, f.b) AS "KID", est(f.kid_std, f.b) AS "KID std over subsets",
       est(c.clip, c.b) AS "CLIP score", lo95(c.clip, c.b) AS "CLIP score lo",
       hi95(c.clip, c.b) AS "CLIP score hi"
FROM fid f LEFT JOIN clip c
  ON (c.b, c.model, c.edit, c.ft_method, c.variant) = (f.b, f.model, f.edit, f.ft_method, f.variant)
 AND c.rank IS NOT DISTINCT FROM f.rank  -- full and DreamBooth have no rank
GROUP BY f.model, f.edit, f.ft_method, f.rank, f.variant
ORDER BY f.model, f.edit, f.ft_method, f.rank,
         list_position(['M', 'M_ed', 'M_ft', 'M_ed_ft'], f.variant);
