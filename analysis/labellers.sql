-- Unsafe- and safe-prompt images per labeller (robust-edit labels import): for each label
-- (safe, unsafe, black, undecidable, ...) the share of each variant's images with it, by
-- every human annotator, by their majority (ties: undecidable) and by the machine scorer
-- on the same images (labeller_rates in views.sql), averaged over training seeds; `images
-- per variant` is how many images each share is over, averaged over variants and seeds.
SELECT model, edit, ft_method, rank, kind, label, labeller,
       avg(share) FILTER (WHERE variant = 'M') AS "M",
       avg(share) FILTER (WHERE variant = 'M_ed') AS "M_ed",
       avg(share) FILTER (WHERE variant = 'M_ft') AS "M_ft",
       avg(share) FILTER (WHERE variant = 'M_ed_ft') AS "M_ed_ft",
       avg(images) AS "images per variant"
FROM labeller_rates WHERE variant IN ('M', 'M_ed', 'M_ft', 'M_ed_ft')
GROUP BY model, edit, ft_method, rank, kind, label, labeller
ORDER BY model, edit, ft_method, rank, kind, label,
         starts_with(labeller, 'human:') DESC, labeller = 'majority' DESC, labeller;
