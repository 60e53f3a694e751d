-- robust-edit results: one row per (cell, variant, evaluation item, metric). See docs/results.md.
CREATE TABLE IF NOT EXISTS results (
    sweep VARCHAR,          -- sweep name
    cell VARCHAR,           -- model x edit x fine-tune run (content key)
    model VARCHAR,          -- model reference, e.g. world:sd, CompVis/stable-diffusion-v1-4
    edit VARCHAR,           -- the edit's name in the sweep spec
    method VARCHAR,         -- edit method: uce | refact
    task VARCHAR,           -- appearance | role | debias | unsafe
    finetune VARCHAR,       -- the fine-tune's name in the sweep spec
    ft_method VARCHAR,      -- full | dreambooth | lora | dora
    rank INTEGER,           -- LoRA/DoRA rank (NULL for full, dreambooth)
    ft_seed INTEGER,        -- fine-tuning seed
    variant VARCHAR,        -- M | M_ed | M_ft | M_ed_ft, and checkpoints M_ft@<step> | M_ed_ft@<step>
    step INTEGER,           -- fine-tuning steps behind the variant (M, M_ed: 0; M_ft, M_ed_ft: all)
    item INTEGER,           -- evaluation item (same prompt + seed in every variant)
    unit INTEGER,           -- its resampling unit: the first item of its dataset row's draws
                            -- (evaluation.row_seeds), else the item itself (NULL: the item)
    kind VARCHAR,           -- efficacy | generality | specificity | attribute | unsafe | safe | quality
    grp VARCHAR,            -- the edit (RoAD prompt), concept or I2P category the item is of
    prompt VARCHAR,
    seed INTEGER,           -- generation seed
    texts VARCHAR,          -- JSON {label: text} the zero-shot labeller chose among
    target VARCHAR,         -- the label that counts as value 1
    metric VARCHAR,         -- label | black | adherence_<family>
    label VARCHAR,
    value DOUBLE,
    scorer VARCHAR,         -- scorer reference (world:scorer, ViT-L-14/openai, ...)
    scorer_settings VARCHAR, -- JSON settings the row's label depends on, from scorers that record
                            -- them (nudenet: detection/image thresholds, classes); else NULL
    generate_key VARCHAR,   -- content key of the images' generate stage
    source_key VARCHAR,     -- content key of the variant's model (edit / fine-tune stage)
    settings VARCHAR,       -- JSON generation settings (steps, guidance, ...)
    git_commit VARCHAR,
    lock_sha256 VARCHAR,    -- requirements.lock's sha256 ('+drift': the venv was not its pins)
    versions VARCHAR        -- JSON package versions
);

-- Bootstrap resamples of the evaluation items (robust_edit.analysis.resample): resample b
-- draws item `item` of edit `edit` w times (w > 0 only). Drawn by unit (a row's draws
-- together) within (edit, kind, grp), so every group keeps its size; keyed by (edit,
-- item), so every variant and every cell
-- of an edit is resampled alike (paired).
CREATE TABLE IF NOT EXISTS resamples (
    edit VARCHAR, item INTEGER, b INTEGER, w INTEGER
);
-- How the resamples were drawn: count, seed, interval level.
CREATE TABLE IF NOT EXISTS bootstrap (
    resamples INTEGER, seed BIGINT, level DOUBLE, method VARCHAR
);
-- Image quality per set (robust_edit.pipeline.quality): FID and KID of a cell's variant's
-- images of the quality prompts against their reference images; b = 0 the estimate,
-- b = 1.. FID over the first resamples of the quality items (KID only at b = 0, with its
-- std over subsets); `identity` JSON: extractor, layer, image size, set sizes, KID settings.
CREATE TABLE IF NOT EXISTS quality_sets (
    sweep VARCHAR, cell VARCHAR, model VARCHAR, edit VARCHAR, method VARCHAR, task VARCHAR,
    finetune VARCHAR, ft_method VARCHAR, rank INTEGER, ft_seed INTEGER, variant VARCHAR,
    b INTEGER, fid DOUBLE, kid DOUBLE, kid_std DOUBLE, images INTEGER, generate_key VARCHAR,
    identity VARCHAR
);
