"""`kerasae zoo list | info | pull | evaluate | hub`: the presets from the command line."""

import json

from kerasae.presets import (
    CACHE_ENV,
    INDEX_FILE,
    MIRRORS_ENV,
    ROOT_ENV,
    info,
    pull,
    read_index,
    zoo_root,
)
from kerasae.presets.converted import has_converted
from kerasae.presets.index import lookup


def fmt(value):
    """A metric as the CLI prints it (6 significant digits)."""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def add_parsers(subparsers):
    """Registers `kerasae zoo list | info | pull | evaluate | hub`."""
    p = subparsers.add_parser("zoo", help="pretrained presets: list, info, pull, evaluate, hub")
    zsub = p.add_subparsers(dest="zoo_command", required=True)

    def common(sp, mirrors=True):
        sp.add_argument("--root", default=None, help=f"zoo root with {INDEX_FILE} "
                        f"(default: ${ROOT_ENV}, else the copy shipped with kerasae)")
        sp.add_argument("--cache-dir", default=None,
                        help=f"cache directory (default: ${CACHE_ENV}, else ~/.cache/kerasae/zoo)")
        if mirrors:
            sp.add_argument("--mirror", action="append", default=None, metavar="URL",
                            help=f"mirror base URL, repeatable (default: ${MIRRORS_ENV})")

    sp = zsub.add_parser("list", help="list the presets")
    common(sp, mirrors=False)
    sp.set_defaults(func=_cli_list)
    sp = zsub.add_parser("info", help="a preset's index entry, metadata and files")
    sp.add_argument("name")
    sp.add_argument("--json", action="store_true", help="print JSON")
    common(sp)
    sp.set_defaults(func=_cli_info)
    sp = zsub.add_parser("pull", help="download a preset into the cache, verified")
    sp.add_argument("name")
    common(sp)
    sp.set_defaults(func=_cli_pull)
    sp = zsub.add_parser("evaluate", help="measure a preset on a split (the card's numbers)")
    sp.add_argument("name")
    sp.add_argument("--split", default="test")
    sp.add_argument("--dataset", default=None, metavar="DATA",
                    help="measure on this dataset instead of the preset's; a series preset "
                         "needs its series (the .csv file its card names)")
    sp.add_argument("--label", default=None, metavar="COL",
                    help="a series' label column, instead of the labelled windows of the card")
    sp.add_argument("--json", default=None, metavar="OUT", help="also write the numbers here")
    sp.add_argument("--limit", type=int, default=None,
                    help="only the first N images (a quick check, not card numbers)")
    sp.add_argument("--batch-size", type=int, default=None)
    sp.add_argument("--nll-samples", type=int, default=None,
                    help="importance samples for the VAE NLL (default: as recorded)")
    sp.add_argument("--data-dir", default=None)
    sp.add_argument("--raw-dir", default=None)
    common(sp)
    sp.set_defaults(func=_cli_evaluate)
    sp = zsub.add_parser(
        "hub", help="write a preset as a folder for the Hugging Face Hub",
        description="Write a preset's files, a model card with Hub metadata (model-index) "
        "and kerasae-preset.json (every file's sha256) to OUT_DIR; `hf upload` publishes it "
        "and hf://OWNER/REPO loads it.")
    sp.add_argument("name", help="preset name (or hf://...)")
    sp.add_argument("out_dir")
    sp.add_argument("--repo-id", default=None, metavar="OWNER/REPO",
                    help="the hub repo it will be uploaded to (for the card and the command)")
    sp.add_argument("--force", action="store_true", help="replace OUT_DIR if this wrote it")
    sp.add_argument("--root", default=None, help=f"zoo root with {INDEX_FILE}")
    sp.set_defaults(func=_cli_hub)


def _cli_hub(args):
    # lazy: the card reads the model registry (Keras)
    from kerasae.zoo.hub import hub_folder

    result = hub_folder(args.name, args.out_dir, repo_id=args.repo_id, root=args.root,
                        force=args.force)
    print(f"wrote {result['dir']} ({len(result['files'])} files, pinned in kerasae-preset.json)")
    print(f"publish it with: {result['upload']}")
    return 0


def _cli_list(args):
    index = read_index(args.root)
    if not index["presets"]:
        print(f"No presets in {zoo_root(args.root) or '(no zoo root)'}.")
        return 0
    print(f"{'name':34s} {'ver':>3s}  {'builder':18s} {'params':>9s}  description")
    for name, e in index["presets"].items():
        print(f"{name:34s} {e['version']:>3d}  {e['builder']:18s} {e['params']:>9,d}  "
              f"{e['description']}")
    return 0


def _cli_info(args):
    data = info(args.name, root=args.root, cache_dir=args.cache_dir, mirrors=args.mirror)
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
        return 0
    meta = data["metadata"]
    print(f"{data['name']} version {data['version']}: {data['description']}")
    print(f"  builder   {data['builder']}  ({data['params']:,} parameters)")
    print(f"  data      {data['dataset']} (trained on {data['split']}, evaluated on "
          f"{data['eval_split']})")
    print(f"  licence   {data['license']}")
    ran, today = meta["recipe"]["command"], " && ".join(data.get("train_sh") or [])
    print(f"  trained   {ran}" + ("" if not today or today == ran else
                                  f"\n            (as run; with today's defaults: {today})"))
    for key, value in meta["evaluation"]["metrics"].items():
        print(f"  {key:14s} {fmt(value)}")
    for filename, spec in data["files"].items():
        origin = spec.get("converted_from")
        where = ", ".join(spec["available"]) or (
            f"converted on first use from {origin['repository']}@{origin['commit'][:7]} "
            f"({origin['license']})" if origin else "remote only")
        print(f"  {filename:18s} {spec['bytes']:>10,d} bytes  sha256 {spec['sha256'][:16]}...  "
              f"[{where}]")
    if data["previous_versions"]:
        print(f"  older versions: {', '.join(map(str, data['previous_versions']))} "
              f"(load with '{data['name']}@N')")
    return 0


def _converts(name, root):
    """Whether preset `name` has a file made from upstream checkpoints (needs the models)."""
    if name.startswith("hf://"):
        return False
    _, entry = lookup(read_index(root), name)
    return has_converted(entry["files"])


def _cli_pull(args):
    if _converts(args.name, args.root):
        import kerasae.models  # noqa: F401  # lazy: registers the converters (loads TensorFlow)
    folder = pull(args.name, mirrors=args.mirror, cache_dir=args.cache_dir, root=args.root)
    print(f"{args.name}: verified files in {folder}")
    return 0


def _cli_evaluate(args):
    # lazy: measuring loads the model, TensorFlow and the data
    from kerasae.zoo.evaluate import evaluate_preset
    from kerasae.zoo.publishing import write_json

    settings = {k: v for k, v in (("batch_size", args.batch_size),
                                  ("nll_samples", args.nll_samples)) if v is not None}
    result = evaluate_preset(args.name, split=args.split, dataset=args.dataset,
                             label=args.label, limit=args.limit, settings=settings,
                             root=args.root, cache_dir=args.cache_dir, mirrors=args.mirror,
                             data_dir=args.data_dir, raw_dir=args.raw_dir)
    what = "held-out steps" if "labelled_windows" in result else "images"
    print(f"{result['preset']}@{result['version']} on {result['dataset']} {result['split']} "
          f"({result['examples']} {what})")
    for key, value in result["metrics"].items():
        print(f"  {key:20s} {fmt(value)}")
    if args.json:
        write_json(args.json, result)
        print(f"wrote {args.json}")
    return 0
