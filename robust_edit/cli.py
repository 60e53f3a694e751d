"""`robust-edit` command line: one sub-command per job, `--help` on each."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from robust_edit.atomic import claim_output, write_atomic
from robust_edit.extras import MissingExtra
from robust_edit.world.vocab import GUIDANCE as WORLD_GUIDANCE
from robust_edit.world.vocab import TRUE_CFG as WORLD_TRUE_CFG


def _world_build(args) -> None:
    from robust_edit.world import build as B

    out = Path(args.out)
    # The shipped world (robust_edit/world/assets) is a previous build too: --out plus --force.
    claim_output(out, "build.json", force=args.force)
    calibration = {k: v for k, v in (("calibration_images", args.calibration_images),
                                      ("calibration_rounds", args.calibration_rounds)) if v is not None}
    cfg = (B.quick_config if args.quick else B.BuildConfig)(seed=args.seed, **calibration)
    record = B.build(out, cfg, only=args.only)
    from robust_edit.world.datasets import write_all

    write_all(out / "data")
    print(json.dumps({"out": str(out), "minutes": record["minutes"]}, indent=2))


def _world_describe(args) -> None:
    from robust_edit.world import vocab

    info = vocab.describe()
    if args.json:
        from robust_edit.world.datasets import describe_datasets

        info["datasets"] = describe_datasets()
        print(json.dumps(info, indent=2))
    else:
        for key, value in info.items():
            print(f"{key}: {value}")


def _world_evaluate(args) -> None:
    from robust_edit.world.evaluate import evaluate_world

    report = evaluate_world(args.model, n_per_prompt=args.images, steps=args.steps,
                            guidance=args.guidance, seed=args.seed, true_cfg=args.true_cfg)
    print(json.dumps(report, indent=2) if args.json else report)


def _world_grid(args) -> None:
    from robust_edit.world.evaluate import prompt_grid

    if Path(args.out).exists() and not args.force:  # before drawing: a file we may not own
        raise ValueError(f"--out {args.out}: exists; pass --force to replace it, or choose "
                         "another file")
    path = prompt_grid(args.model, Path(args.out), steps=args.steps, guidance=args.guidance,
                       true_cfg=args.true_cfg)
    print(f"prompt grid written to {path}")


QUICKSTART = Path(__file__).resolve().parent.parent / "sweeps" / "quickstart.yaml"


def _sweep_run(args) -> None:
    from robust_edit.config import load_sweep
    from robust_edit.pipeline.run import report, run

    report(run(load_sweep(args.spec)))


def _sql(args) -> None:
    import duckdb

    from robust_edit import analysis

    if not Path(args.db).is_file():
        raise FileNotFoundError(f"--db {args.db}: no results database there; run a sweep first "
                                "(robust-edit sweep run SPEC) or pass --db <storage>/results.duckdb")
    try:  # read-only and without file access (analysis.connect): a statement can only read
        db = analysis.connect(args.db, read_only=True)
        cursor = db.execute(args.query)
        result = cursor.df() if cursor is not None else None  # None: no statement (blank, comments)
    except duckdb.Error as err:
        first_line = str(err).partition("\n")[0]  # DuckDB adds the query and a caret below
        raise ValueError(f"sql: {first_line}") from None
    if result is None:
        raise ValueError(f"sql: {args.query!r} has no statement; pass one, e.g. "
                         '"SELECT * FROM variant_metrics"')
    print(result.to_markdown(index=False))


def _report(args) -> None:
    from robust_edit import report

    storage, db = report.locate(args.target)
    print(report.write_report(storage, db, args.out, force=args.force))


def _generate(args) -> None:
    from robust_edit.generate import GenerationSettings, generate_csv

    settings = GenerationSettings(steps=args.steps, guidance=args.guidance, true_cfg=args.true_cfg,
                                  batch_size=args.batch_size, images_per_prompt=args.images)
    manifest = generate_csv(args.model, Path(args.prompts), Path(args.out), settings,
                            limit=args.limit, force=args.force)
    print(f"{len(manifest['images'])} images written to {args.out} (manifest.json)")


def _number(kind: type, low: float, what: str):
    """An argparse type: a finite `kind` >= low (argparse names the option in its error)."""
    import math

    def parse(text: str):
        value = kind(text)
        if not math.isfinite(value) or value < low:
            raise argparse.ArgumentTypeError(f"{text}: give {what}")
        return value

    parse.__name__ = kind.__name__  # argparse's "invalid int value" for non-numbers
    return parse


POSITIVE = _number(int, 1, "a positive integer")
GUIDANCE = _number(float, 0, "a number >= 0 (classifier-free guidance scale)")


def add_true_cfg(parser) -> None:
    parser.add_argument("--true-cfg", action=argparse.BooleanOptionalAction, default=WORLD_TRUE_CFG,
                        help="FLUX without a guidance embedding: guide by a negative-prompt pass "
                             "(default: on, as the world's FLUX needs; FLUX.1-schnell samples unguided)")


def add_config_options(parser: argparse.ArgumentParser, model: type) -> None:
    """One option per top-level field of a config model (`--batch-size` for batch_size):
    its type, choices, help and default come from the field, so the CLI cannot drift from
    the config. Nested sections are set with --param SECTION.NAME=VALUE."""
    import types
    import typing

    from pydantic import BaseModel

    parser.add_argument("--config", help=f"YAML file with the fields of {model.__name__}")
    nested = []
    for name, field in model.model_fields.items():
        if name == "name":  # a sweep's label for result rows
            continue
        kind = field.annotation
        if typing.get_origin(kind) in (typing.Union, types.UnionType):  # X | None
            kind = next(a for a in typing.get_args(kind) if a is not type(None))
        flag = "--" + name.replace("_", "-")
        help_ = field.description or name.replace("_", " ") + (
            " (required)" if field.is_required() else
            " (default: robust_edit.resolve fills it)" if field.default is None else
            f" (default: {field.default})")
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            nested.append((name, kind))
        elif typing.get_origin(kind) is typing.Literal:
            parser.add_argument(flag, choices=typing.get_args(kind), help=help_, default=argparse.SUPPRESS)
        elif kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, help=help_,
                                default=argparse.SUPPRESS)
        elif typing.get_origin(kind) is tuple:
            parser.add_argument(flag, help=help_ + ", comma-separated", default=argparse.SUPPRESS,
                                type=lambda v: [c.strip() for c in v.split(",") if c.strip()])
        elif kind in (int, float, str):
            parser.add_argument(flag, type=kind, help=help_, default=argparse.SUPPRESS)
    if nested:
        section, fields = nested[0][0], nested[0][1].model_fields
        example = next(f"{section}.{n}={f.default}" for n, f in fields.items()
                       if f.default is not None)
        parser.add_argument("--param", action="append", metavar="SECTION.NAME=VALUE",
                            help=f"set a field of {', '.join(n for n, _ in nested)}, e.g. "
                                 f"{example} (repeatable)")


def config_from_args(model: type, args):
    """A config model from --config YAML, then the field options, then --param overrides."""
    import yaml

    from robust_edit.config import read_yaml, validate

    raw = read_yaml(args.config) if args.config else {}
    raw |= {k: v for k, v in vars(args).items() if k in model.model_fields}
    for item in getattr(args, "param", None) or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--param {item!r}: expected section.name=value, e.g. uce.lam=0.3")
        *path, leaf = key.split(".")
        node = raw
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    return validate(model, raw, args.config or "options")


def _edit(args) -> None:
    from robust_edit import edit
    from robust_edit.config import EditConfig
    from robust_edit.edit.artifact import MANIFEST

    cfg = config_from_args(EditConfig, args)
    claim_output(Path(args.out), MANIFEST, force=args.force)
    artifact, edited = edit.run(cfg, args.model)
    folder = artifact.save(Path(args.out))
    print(f"{cfg.method} {cfg.task} edit of {args.model}: {len(artifact.tensors)} tensor(s) "
          f"written to {folder} ({artifact.manifest['seconds']} s)")
    if args.evaluate:
        from robust_edit.edit.evaluate import evaluate_edit
        from robust_edit.models import load_pipeline

        report = evaluate_edit(cfg, {"M": load_pipeline(args.model), "M_ed": edited},
                               seeds=args.seeds)
        write_atomic(folder / "evaluation.json", json.dumps(report, indent=2))
        print(json.dumps(report["variants"], indent=2))


def _finetune(args) -> None:
    from robust_edit import finetune
    from robust_edit.config import FinetuneConfig

    cfg = config_from_args(FinetuneConfig, args)
    manifest = finetune.run(cfg, args.model, Path(args.out),
                            edit_artifact=Path(args.edit) if args.edit else None,
                            keep_steps=args.keep_checkpoints)
    print(f"{cfg.method} fine-tuning of {args.model}{' + edit ' + args.edit if args.edit else ''}: "
          f"{manifest['status']}, checkpoints kept at steps {manifest['checkpoints']}, "
          f"final loss {manifest['losses'][-1]:.4f}; outputs in {args.out}")


def _sweep_plan(args) -> None:
    from robust_edit.config import load_sweep
    from robust_edit.pipeline.plan import as_json, describe

    spec = load_sweep(args.spec)
    print(json.dumps(as_json(spec), indent=1) if args.json else describe(spec))


def _labels_export(args) -> None:
    from robust_edit import labels

    out = Path(args.out) if args.out else labels.default_out(Path(args.storage), args.edit)
    manifest = labels.export(Path(args.storage), out, args.edit, force=args.force)
    print(f"{manifest['images']} images to label in {out}: fill in annotator and label on each "
          f"row of {out / labels.CSV_NAME} (labels: {', '.join(manifest['labels'])}), then "
          f"{manifest['then']}")


def _labels_import(args) -> None:
    from robust_edit import labels

    report = labels.import_labels(Path(args.csv), Path(args.storage),
                                  db=Path(args.db) if args.db else None)
    for annotator, (count, file) in report["annotators"].items():
        print(f"{count} labels of {annotator} stored in {file}")
    for db, rows in report["databases"].items():
        print(f"{db}: {rows} human rows (scorer human:<annotator>); robust-edit sql --db {db} "
              '"SELECT * FROM label_agreement"')
    if not report["databases"]:
        print("no results database of this storage yet: the sweep's next database includes "
              "the labels")


def build_parser() -> argparse.ArgumentParser:
    from robust_edit.config import EditConfig, FinetuneConfig
    from robust_edit.world.profile import ASSETS as WORLD_ASSETS

    p = Parser(prog="robust-edit", description=__doc__)
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = p.add_subparsers(dest="command", required=True)

    world = sub.add_parser("world", help="the embedded world: build, describe, evaluate, grid")
    wsub = world.add_subparsers(dest="world_command", required=True)
    b = wsub.add_parser("build", help="train the world models from scratch (deterministic)")
    b.add_argument("--out", default="outputs/world",
                   help="output folder (default: outputs/world); the shipped world is replaced "
                        f"only by --out {WORLD_ASSETS} --force")
    b.add_argument("--force", action="store_true", help="replace a previous build in --out")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--quick", action="store_true", help="a few steps of each stage (for tests)")
    b.add_argument("--only", choices=["sd", "sdxl", "flux", "scorer", "calibrate"],
                   help="build one model (sd, sdxl, flux: each includes its calibration, which "
                        "needs the scorer), or only calibrate: every built model's professions to "
                        "the designed rates, from the trained rows (a recalibration starts from the "
                        "recorded offsets)")
    b.add_argument("--calibration-images", type=POSITIVE,
                   help="images per profession per calibration round (default: BuildConfig's 240)")
    b.add_argument("--calibration-rounds", type=POSITIVE,
                   help="calibration rounds after the first measurement (default: BuildConfig's 5)")
    b.set_defaults(func=_world_build)
    d = wsub.add_parser("describe", help="print the world's vocabulary and datasets")
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=_world_describe)
    e = wsub.add_parser("evaluate", help="measure controllability and scorer accuracy afresh")
    e.add_argument("--model", default="world:sd")
    e.add_argument("--images", type=POSITIVE, default=2, help="images per prompt")
    e.add_argument("--steps", type=POSITIVE, default=25)
    e.add_argument("--guidance", type=GUIDANCE, default=WORLD_GUIDANCE)
    add_true_cfg(e)
    e.add_argument("--seed", type=int, default=1234)
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=_world_evaluate)
    g = wsub.add_parser("grid", help="render a prompt grid PNG with a model")
    g.add_argument("--model", default="world:sd")
    g.add_argument("--out", default="outputs/world-grid.png")
    g.add_argument("--force", action="store_true", help="replace an existing --out file")
    g.add_argument("--steps", type=POSITIVE, default=25)
    g.add_argument("--guidance", type=GUIDANCE, default=WORLD_GUIDANCE)
    add_true_cfg(g)
    g.set_defaults(func=_world_grid)

    q = sub.add_parser("quickstart", help="the main job: the quickstart sweep on the shipped world")
    q.add_argument("--spec", default=str(QUICKSTART), help="sweep spec (default: sweeps/quickstart.yaml)")
    q.set_defaults(func=_sweep_run)

    ed = sub.add_parser("edit", help="edit a model (UCE, ReFACT) and write the edit artifact")
    ed.add_argument("--model", default="world:sd", help="world:<name>, pipeline folder or hub id")
    add_config_options(ed, EditConfig)
    ed.add_argument("--out", required=True, help="artifact folder (edit.safetensors + edit.json)")
    ed.add_argument("--force", action="store_true", help="replace an edit artifact in --out")
    ed.add_argument("--evaluate", action="store_true",
                    help="also measure M vs M_ed with the task's protocol (evaluation.json)")
    ed.add_argument("--seeds", type=POSITIVE, default=25, help="seeds per prompt for RoAD metrics")
    ed.set_defaults(func=_edit)

    ft = sub.add_parser("finetune", help="fine-tune a model (full, DreamBooth, LoRA, DoRA)")
    ft.add_argument("--model", default="world:sd", help="world:<name>, pipeline folder or hub id")
    ft.add_argument("--edit", help="edit artifact folder to apply first (fine-tunes M_ed)")
    add_config_options(ft, FinetuneConfig)
    ft.add_argument("--out", required=True, help="run folder (checkpoints, outputs, manifest)")
    ft.add_argument("--keep-checkpoints", metavar="STEP", type=int, nargs="+", default=(),
                    help="steps whose checkpoints stay after the run, for load_variant(step=...) "
                         "(default: none; the outputs hold the final model)")
    ft.set_defaults(func=_finetune)

    sw = sub.add_parser("sweep", help="run or plan a sweep spec (sweeps/*.yaml)")
    swsub = sw.add_subparsers(dest="sweep_command", required=True)
    plan = swsub.add_parser("plan", help="print the stage graph's size (and GPU-hours for GPU specs)")
    plan.add_argument("spec", help="sweep YAML, e.g. sweeps/quickstart.yaml")
    plan.add_argument("--json", action="store_true",
                      help="every stage: kind, key, inputs, labels and resolved config")
    plan.set_defaults(func=_sweep_plan)
    srun = swsub.add_parser("run", help="run a sweep on an embedded Ray (or RAY_ADDRESS's cluster)")
    srun.add_argument("spec", help="sweep YAML, e.g. sweeps/quickstart.yaml")
    srun.set_defaults(func=_sweep_run)

    sql = sub.add_parser("sql", help="query a sweep's results database (DuckDB SQL)")
    sql.add_argument("query", help='e.g. "SELECT * FROM variant_metrics" (views: analysis/views.sql)')
    sql.add_argument("--db", default="outputs/sweeps/quickstart/results.duckdb",
                     help="results database (default: the quickstart's)")
    sql.set_defaults(func=_sql)

    rep = sub.add_parser("report", help="one self-contained HTML file of a sweep's tables, "
                                        "figures, images and provenance")
    rep.add_argument("target", metavar="STORAGE_OR_SPEC",
                     help="the sweep's storage folder (with results.duckdb) or its spec YAML")
    rep.add_argument("--out", help="HTML file (default: <storage>/report.html)")
    rep.add_argument("--force", action="store_true",
                     help="replace an existing --out file that is not an earlier report")
    rep.set_defaults(func=_report)

    gen = sub.add_parser("generate", help="images for a prompt CSV (prompt, evaluation_seed)")
    gen.add_argument("--model", default="world:sd", help="world:<name>, pipeline folder or hub id")
    gen.add_argument("--prompts", required=True, help="CSV with prompt and evaluation_seed columns")
    gen.add_argument("--out", required=True, help="output folder for PNGs and manifest.json")
    gen.add_argument("--force", action="store_true", help="replace a previous output in --out")
    gen.add_argument("--steps", type=POSITIVE, default=25)
    gen.add_argument("--guidance", type=GUIDANCE, default=WORLD_GUIDANCE,
                     help="classifier-free guidance (default: the world's; SD1.x uses 7.5)")
    add_true_cfg(gen)
    gen.add_argument("--batch-size", type=POSITIVE, default=64)
    gen.add_argument("--images", type=POSITIVE, default=1, help="images per prompt")
    gen.add_argument("--limit", type=POSITIVE, help="only the first N rows")
    gen.set_defaults(func=_generate)

    lab = sub.add_parser("labels", help="human labels: export images to label, import the labels")
    lsub = lab.add_subparsers(dest="labels_command", required=True)
    lx = lsub.add_parser("export", help="a sweep's images to label: PNGs + labels.csv, blind to "
                                        "the variant (docs/results.md, Human labels)")
    lx.add_argument("storage", help="the sweep's storage folder, e.g. outputs/sweeps/quickstart")
    lx.add_argument("--out", help="output folder (default: <storage>/labelling/<edit or unsafe>)")
    lx.add_argument("--edit", help="every image of this edit's prompts (default: every unsafe- "
                                   "and safe-prompt image)")
    lx.add_argument("--force", action="store_true", help="replace a previous export in --out")
    lx.set_defaults(func=_labels_export)
    li = lsub.add_parser("import", help="store a labels CSV (image_key, annotator, label) and add "
                                        "it to the results database as scorer human:<annotator>")
    li.add_argument("csv", help="labels CSV, e.g. the filled-in labels.csv of labels export")
    li.add_argument("storage", help="the sweep's storage folder the images came from")
    li.add_argument("--db", help="results database to update (default: the ones this storage's "
                                 "sweeps built)")
    li.set_defaults(func=_labels_import)
    return p


class Parser(argparse.ArgumentParser):
    """Usage errors as one line (argparse prints the usage block first)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def main(argv: list[str] | None = None) -> None:
    from robust_edit.pipeline.store import SweepFailed

    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except SweepFailed as err:  # not the input's fault: which stages, the rest are stored
        if args.debug:
            raise
        print(f"robust-edit: {err}", file=sys.stderr)
        sys.exit(1)
    # What user input causes: a bad value or file, a missing package. One line naming it;
    # --debug shows the traceback.
    except (ValueError, OSError, MissingExtra) as err:
        if args.debug:
            raise
        message = " ".join(str(err).split()) or type(err).__name__
        print(f"robust-edit: error: {message}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
