"""`kerasae data prepare`: a real TFDS copy of MNIST / Fashion-MNIST from raw IDX files."""

from kerasae.data.idx import RAW_DATASETS
from kerasae.data.tfds import prepare_tfds_from_raw


def add_parsers(sub):
    p = sub.add_parser("data", help="dataset utilities")
    dsub = p.add_subparsers(dest="data_command", required=True)
    prep = dsub.add_parser(
        "prepare", help="build a TFDS copy of mnist / fashion_mnist from raw IDX files"
    )
    prep.add_argument("name", choices=sorted(RAW_DATASETS))
    prep.add_argument("--data-dir", required=True, help="TFDS data directory to write")
    prep.add_argument("--raw-dir", default=None)
    prep.set_defaults(func=_prepare)


def _prepare(args):
    builder = prepare_tfds_from_raw(args.name, args.data_dir, args.raw_dir)
    print(f"prepared {args.name} in {builder.data_dir}")
    return 0
