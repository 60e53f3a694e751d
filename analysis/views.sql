-- Per-item and per-variant metrics over `results` (schema.sql), for the sample itself
-- (b = 0) and for every bootstrap resample b = 1..B of its evaluation items (`resamples`,
-- written by robust_edit.analysis.resample): every estimate below is a weighted mean,
-- w = how often resample b drew the item. Resamples are keyed by (edit, item), so the
-- variants of a cell, and the cells of an edit, see the same draws (paired comparisons).

-- An estimate, and the bounds of its 95 % percentile interval over the resamples. A
-- statistic biased under resampling keeps that bias in its interval: delta = |F - 0.5| /
-- 0.5 near parity resamples above its estimate (|.| folds the noise upward), so there the
-- interval can lie above the estimate; it is reported as computed (docs/results.md).
CREATE OR REPLACE MACRO est(x, b) AS max(CASE WHEN b = 0 THEN x END);
CREATE OR REPLACE MACRO lo95(x, b) AS quantile_cont(CASE WHEN b > 0 THEN x END, 0.025);
CREATE OR REPLACE MACRO hi95(x, b) AS quantile_cont(CASE WHEN b > 0 THEN x END, 0.975);

-- The machine scorers' rows. Human labels (scorer 'human:<annotator>', robust-edit labels
-- import) are copies of machine label rows with another label: the views of the study's
-- metrics read the machine's rows only, the label views at the end the humans'.
CREATE OR REPLACE VIEW machine_results AS
SELECT * FROM results WHERE coalesce(scorer, '') NOT LIKE 'human:%';

-- Each item's weight w in the sample (b = 0, every item once) and in each resample.
CREATE OR REPLACE VIEW item_weights AS
SELECT DISTINCT edit, item, 0 AS b, 1 AS w FROM results
UNION ALL
SELECT edit, item, b, w FROM resamples;

CREATE OR REPLACE VIEW weighted AS
SELECT r.*, s.b, s.w FROM machine_results r JOIN item_weights s USING (edit, item);

-- One value per (b, cell, variant, item, metric): an item is an edit (RoAD), a concept
-- (debias), a label class (unsafe) or an attribute family (world adherence).
CREATE OR REPLACE VIEW item_metrics_b AS
SELECT b, sweep, cell, model, edit, method, task, finetune, ft_method, rank, ft_seed, variant,
       grp AS item, kind AS metric, sum(w * value) / sum(w) AS value, sum(w) AS n
FROM weighted WHERE metric = 'label' AND kind IN ('efficacy', 'generality', 'specificity')
GROUP BY ALL
UNION ALL
-- delta = |F - 0.5| / 0.5, F = share of the counted attribute value
SELECT b, sweep, cell, model, edit, method, task, finetune, ft_method, rank, ft_seed, variant,
       grp, 'delta', abs(sum(w * value) / sum(w) - 0.5) / 0.5, sum(w)
FROM weighted WHERE metric = 'label' AND kind = 'attribute' GROUP BY ALL
UNION ALL
SELECT b, sweep, cell, model, edit, method, task, finetune, ft_method, rank, ft_seed, variant,
       grp, 'share', sum(w * value) / sum(w), sum(w)
FROM weighted WHERE metric = 'label' AND kind = 'attribute' GROUP BY ALL
UNION ALL
-- unsafe prompts: the share of images per label class
SELECT b, sweep, cell, model, edit, method, task, finetune, ft_method, rank, ft_seed, variant,
       c.label, 'label_rate',
       sum(w * CASE WHEN r.label = c.label THEN 1.0 ELSE 0.0 END) / sum(w), sum(w)
FROM weighted r, (VALUES ('safe'), ('unsafe')) c(label)
WHERE r.metric = 'label' AND r.kind = 'unsafe' GROUP BY ALL
UNION ALL
SELECT b, sweep, cell, model, edit, method, task, finetune, ft_method, rank, ft_seed, variant,
       'black', 'label_rate', sum(w * value) / sum(w), sum(w)
FROM weighted WHERE metric = 'black' AND kind = 'unsafe' GROUP BY ALL
UNION ALL
SELECT b, sweep, cell, model, edit, method, task, finetune, ft_method, rank, ft_seed, variant,
       'all', 'safe_prompt_unsafe_rate', sum(w * value) / sum(w), sum(w)
FROM weighted WHERE metric = 'label' AND kind = 'safe' GROUP BY ALL
UNION ALL
SELECT b, sweep, cell, model, edit, method, task, finetune, ft_method, rank, ft_seed, variant,
       replace(metric, 'adherence_', ''), 'safe_prompt_adherence', sum(w * value) / sum(w), sum(w)
FROM weighted WHERE metric LIKE 'adherence_%' GROUP BY ALL
UNION ALL
-- prompt-image agreement over every prompt of the task's set, and separately over the
-- image-quality prompts (evaluation.quality) (scorer clip_score)
SELECT b, sweep, cell, model, edit, method, task, finetune, ft_method, rank, ft_seed, variant,
       'all', CASE WHEN kind = 'quality' THEN 'quality_clip_score' ELSE 'clip_score' END,
       sum(w * value) / sum(w), sum(w)
FROM weighted WHERE metric = 'clip_score' GROUP BY ALL;

CREATE OR REPLACE VIEW item_metrics AS
SELECT * EXCLUDE (b) FROM item_metrics_b WHERE b = 0;

-- The task's headline metrics per variant: the mean over items, with its std over items
-- and the 95 % interval of the mean.
CREATE OR REPLACE VIEW variant_metrics_b AS
SELECT b, sweep, cell, model, edit, method, task, finetune, ft_method, rank, ft_seed, variant,
       CASE WHEN metric = 'delta' THEN 'mean_delta'
            WHEN metric = 'label_rate' THEN item || '_rate' ELSE metric END AS metric,
       avg(value) AS value, stddev_samp(value) AS std, count(*) AS items
FROM item_metrics_b
WHERE NOT (metric = 'label_rate' AND item = 'safe') AND metric <> 'share'
GROUP BY ALL;

CREATE OR REPLACE VIEW variant_metrics AS
SELECT sweep, cell, model, edit, method, task, finetune, ft_method, rank, ft_seed, variant, metric,
       est(value, b) AS value, est(std, b) AS std, est(items, b) AS items,
       lo95(value, b) AS lo, hi95(value, b) AS hi
FROM variant_metrics_b GROUP BY ALL;

-- Per (b, cell, item, metric): the four variants side by side and
-- Delta = |m(M_ed) - m(M_ed_ft)|.
CREATE OR REPLACE VIEW cell_items_b AS
SELECT b, sweep, cell, model, edit, method, task, finetune, ft_method, rank, ft_seed, item, metric,
       max(value) FILTER (WHERE variant = 'M') AS "M",
       max(value) FILTER (WHERE variant = 'M_ed') AS "M_ed",
       max(value) FILTER (WHERE variant = 'M_ft') AS "M_ft",
       max(value) FILTER (WHERE variant = 'M_ed_ft') AS "M_ed_ft",
       abs(max(value) FILTER (WHERE variant = 'M_ed')
           - max(value) FILTER (WHERE variant = 'M_ed_ft')) AS delta
FROM item_metrics_b GROUP BY ALL;

CREATE OR REPLACE VIEW cell_items AS
SELECT * EXCLUDE (b) FROM cell_items_b WHERE b = 0;

-- Flip: per (b, cell, item kind), the share of (prompt, seed) items whose label differs
-- between M_ed and M_ed_ft.
CREATE OR REPLACE VIEW cell_flips_b AS
WITH pairs AS (
    SELECT a.sweep, a.cell, a.model, a.edit, a.method, a.task, a.finetune, a.ft_method, a.rank,
           a.ft_seed, a.kind, a.item, CASE WHEN a.label <> b.label THEN 1.0 ELSE 0.0 END AS flipped
    FROM machine_results a JOIN machine_results b
      ON a.cell = b.cell AND a.item = b.item AND a.metric = b.metric
     AND a.variant = 'M_ed' AND b.variant = 'M_ed_ft'
    WHERE a.metric = 'label')
SELECT w.b, p.sweep, p.cell, p.model, p.edit, p.method, p.task, p.finetune, p.ft_method, p.rank,
       p.ft_seed, p.kind, sum(w.w * p.flipped) / sum(w.w) AS flip, sum(w.w) AS items
FROM pairs p JOIN item_weights w USING (edit, item)
GROUP BY ALL;

CREATE OR REPLACE VIEW cell_flips AS
SELECT * EXCLUDE (b) FROM cell_flips_b WHERE b = 0;

-- Per (b, cell): the task's headline metric, averaged over its items, in each variant,
-- and its Delta: efficacy (appearance, role), delta (debias), the unsafe-label rate
-- (unsafe). The findings and comparisons read this.
CREATE OR REPLACE VIEW headline_b AS
SELECT b, sweep, cell, model, edit, method, task, finetune, ft_method, rank, ft_seed,
       any_value(metric) AS metric,
       avg("M") AS "M", avg("M_ed") AS "M_ed", avg("M_ft") AS "M_ft", avg("M_ed_ft") AS "M_ed_ft",
       avg(delta) AS delta
FROM cell_items_b
WHERE (task IN ('appearance', 'role', 'time') AND metric = 'efficacy')
   OR (task = 'debias' AND metric = 'delta')
   OR (task = 'unsafe' AND metric = 'label_rate' AND item = 'unsafe')
GROUP BY ALL;

-- Unsafe prompts, per label as the paper counts them: each (prompt, seed) item's one label
-- in a variant, 'black' when the pipeline blanked the image, else the labeller's class.
CREATE OR REPLACE VIEW unsafe_item_labels AS
SELECT z.sweep, z.cell, z.model, z.edit, z.method, z.task, z.finetune, z.ft_method, z.rank,
       z.ft_seed, z.variant, z.item,
       CASE WHEN bl.value > 0 THEN 'black' ELSE z.label END AS label
FROM machine_results z LEFT JOIN machine_results bl
  ON bl.cell = z.cell AND bl.variant = z.variant AND bl.item = z.item AND bl.metric = 'black'
WHERE z.kind = 'unsafe' AND z.metric = 'label';

-- Per (b, cell, label L): the share of items labelled L in each variant, Delta(L) =
-- |share(M_ed) - share(M_ed_ft)|, and Flip(L) = the share of items labelled L by M_ed_ft and
-- another label by M_ed (the flips into the labels add up to the items that changed).
-- L ranges over every label any variant of the sweep gave, so an absent label reads 0.
CREATE OR REPLACE VIEW unsafe_labels_b AS
WITH per_item AS (
    SELECT sweep, cell, model, edit, method, task, finetune, ft_method, rank, ft_seed, item,
           max(label) FILTER (WHERE variant = 'M') AS l_m,
           max(label) FILTER (WHERE variant = 'M_ed') AS l_ed,
           max(label) FILTER (WHERE variant = 'M_ft') AS l_ft,
           max(label) FILTER (WHERE variant = 'M_ed_ft') AS l_ed_ft
    FROM unsafe_item_labels GROUP BY ALL),
shares AS (
    SELECT w.b, p.sweep, p.cell, p.model, p.edit, p.method, p.task, p.finetune, p.ft_method,
           p.rank, p.ft_seed, c.label,
           sum(w.w * (p.l_m = c.label)::DOUBLE) / sum(w.w) AS "M",
           sum(w.w * (p.l_ed = c.label)::DOUBLE) / sum(w.w) AS "M_ed",
           sum(w.w * (p.l_ft = c.label)::DOUBLE) / sum(w.w) AS "M_ft",
           sum(w.w * (p.l_ed_ft = c.label)::DOUBLE) / sum(w.w) AS "M_ed_ft",
           sum(w.w * (p.l_ed_ft = c.label AND p.l_ed <> c.label)::DOUBLE) / sum(w.w) AS flip,
           sum(w.w) AS items
    FROM per_item p JOIN item_weights w USING (edit, item),
         (SELECT DISTINCT label FROM unsafe_item_labels) c
    GROUP BY ALL)
SELECT *, abs("M_ed" - "M_ed_ft") AS delta FROM shares;

-- Human labels (robust-edit labels import; docs/results.md, *Human labels*): one row per
-- (cell, variant, item, annotator), `labeller` = 'human:<annotator>'. `label_set` names the
-- classes the machine labeller chose among (the item's texts), so that agreement is read
-- over images labelled with the same classes.
CREATE OR REPLACE VIEW human_labels AS
SELECT sweep, cell, model, edit, method, task, finetune, ft_method, rank, ft_seed, variant, item,
       kind, grp, target, generate_key,
       coalesce(array_to_string(list_sort(json_keys(texts)), '|'), '') AS label_set,
       scorer AS labeller, label
FROM results WHERE scorer LIKE 'human:%' AND metric = 'label';

-- Fleiss' kappa of the human annotators per cell and label set, over the images (variant,
-- item) that at least two annotators labelled: n_ij annotators gave image i label j, n_i =
-- sum_j n_ij, P_i = (sum_j n_ij^2 - n_i) / (n_i (n_i - 1)), P_bar = mean_i P_i, p_j = sum_i
-- n_ij / sum_i n_i, P_e = sum_j p_j^2, kappa = (P_bar - P_e) / (1 - P_e) (NULL where P_e = 1:
-- every annotator gave one and the same label). With the same n annotators on every image
-- this is Fleiss (1971); an image fewer annotators labelled enters with its own n_i.
CREATE OR REPLACE VIEW label_agreement AS
WITH rated AS (
    SELECT * FROM human_labels
    QUALIFY count(*) OVER (PARTITION BY sweep, cell, label_set, variant, item) >= 2),
n AS (
    SELECT sweep, cell, label_set, variant, item, label, count(*)::DOUBLE AS n_ij
    FROM rated GROUP BY ALL),
observed AS (
    SELECT sweep, cell, label_set, count(*) AS images, avg(p_i) AS p_bar
    FROM (SELECT sweep, cell, label_set,
                 (sum(n_ij * n_ij) - sum(n_ij)) / (sum(n_ij) * (sum(n_ij) - 1)) AS p_i
          FROM n GROUP BY sweep, cell, label_set, variant, item)
    GROUP BY ALL),
chance AS (
    SELECT sweep, cell, label_set, sum(p_j * p_j) AS p_e, count(*) AS labels
    FROM (SELECT sweep, cell, label_set, label,
                 sum(n_ij) / sum(sum(n_ij)) OVER (PARTITION BY sweep, cell, label_set) AS p_j
          FROM n GROUP BY sweep, cell, label_set, label)
    GROUP BY ALL),
axes AS (
    SELECT sweep, cell, model, edit, method, task, finetune, ft_method, rank, ft_seed, label_set,
           count(DISTINCT labeller) AS annotators
    FROM rated GROUP BY ALL)
SELECT a.*, o.images, c.labels, o.p_bar AS "P_bar", c.p_e AS "P_e",
       CASE WHEN c.p_e < 1 THEN (o.p_bar - c.p_e) / (1 - c.p_e) END AS kappa
FROM axes a JOIN observed o USING (sweep, cell, label_set) JOIN chance c USING (sweep, cell, label_set);

-- Unsafe- and safe-prompt images, one label per (cell, variant, item, labeller): each
-- annotator's ('human:<annotator>'), the annotators' majority ('majority': the label most
-- of them gave, 'undecidable' on a tie) and the machine scorer's as the paper counts it
-- ('black' where the pipeline blanked the image; labeller = its scorer reference), the
-- machine's on the images some annotator labelled only, so that all read the same images.
CREATE OR REPLACE VIEW labeller_item_labels AS
WITH human AS (
    SELECT sweep, cell, model, edit, method, task, finetune, ft_method, rank, ft_seed, variant,
           item, kind, labeller, label
    FROM human_labels WHERE kind IN ('unsafe', 'safe')),
votes AS (
    SELECT *, max(n) OVER (PARTITION BY sweep, cell, variant, item) AS top
    FROM (SELECT sweep, cell, model, edit, method, task, finetune, ft_method, rank, ft_seed,
                 variant, item, kind, label, count(*) AS n
          FROM human GROUP BY ALL)),
majority AS (
    SELECT sweep, cell, model, edit, method, task, finetune, ft_method, rank, ft_seed, variant,
           item, kind, 'majority' AS labeller,
           CASE WHEN count(*) > 1 THEN 'undecidable' ELSE any_value(label) END AS label
    FROM votes WHERE n = top GROUP BY ALL),
machine AS (
    SELECT z.sweep, z.cell, z.model, z.edit, z.method, z.task, z.finetune, z.ft_method, z.rank,
           z.ft_seed, z.variant, z.item, z.kind, z.scorer AS labeller,
           CASE WHEN bl.value > 0 THEN 'black' ELSE z.label END AS label
    FROM machine_results z LEFT JOIN machine_results bl
      ON bl.cell = z.cell AND bl.variant = z.variant AND bl.item = z.item AND bl.metric = 'black'
    WHERE z.kind IN ('unsafe', 'safe') AND z.metric = 'label'
      AND EXISTS (SELECT 1 FROM human h WHERE h.sweep = z.sweep AND h.cell = z.cell
                                          AND h.variant = z.variant AND h.item = z.item))
SELECT * FROM human UNION ALL SELECT * FROM majority UNION ALL SELECT * FROM machine;

-- Per (cell, variant, prompt kind, labeller, label L): the share of the labeller's images
-- labelled L, and how many images it labelled. L ranges over every label any labeller gave.
CREATE OR REPLACE VIEW labeller_rates AS
SELECT l.sweep, l.cell, l.model, l.edit, l.method, l.task, l.finetune, l.ft_method, l.rank,
       l.ft_seed, l.variant, l.kind, l.labeller, c.label,
       avg((l.label = c.label)::DOUBLE) AS share, count(*) AS images
FROM labeller_item_labels l, (SELECT DISTINCT label FROM labeller_item_labels) c
GROUP BY ALL;
