-- Agreement of the human annotators (robust-edit labels import): Fleiss' kappa per cell and
-- label set (label_agreement in views.sql) over the images at least two annotators
-- labelled, with how many images, annotators and distinct labels it is computed on.
SELECT model, edit, finetune, ft_method, rank, ft_seed, label_set, images, annotators, labels,
       "P_bar", "P_e", kappa
FROM label_agreement
ORDER BY model, edit, finetune, rank, ft_seed, label_set;
