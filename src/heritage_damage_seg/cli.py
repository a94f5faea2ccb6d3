"""``heritage-damage-seg``: the command line for using trained models outside Snakemake.

heritage-damage-seg predict SCANS_DIR -o damage_maps/          # best model of results/
heritage-damage-seg predict a.tif b.jpg -o out/ --checkpoint results/maxvit_tiny/model_best.pt
heritage-damage-seg export results/convnext_tiny/model_best.pt -o export/convnext_tiny/
heritage-damage-seg import-corrections outlines/*.geojson --scans scans/ -o corrections/ \\
    --reviewer "A. Restorer" --unreviewed ignore
"""

from __future__ import annotations

import argparse
import datetime
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from heritage_damage_seg.data.sources import DatasetError
from heritage_damage_seg.inference.corrections import Review, import_corrections
from heritage_damage_seg.inference.export import export_model
from heritage_damage_seg.inference.iiif import LOCAL_BASE_URL
from heritage_damage_seg.inference.outlines import OutlineSettings
from heritage_damage_seg.inference.predict import OVERLAY_MAX_SIDE, PredictError, predict_folder
from heritage_damage_seg.inference.products import ProductSettings
from heritage_damage_seg.model.sliding import BLENDS, SlidingSettings

# The defaults of the command's options are those of the settings they fill (the workflow's come
# from the config schema, which tests/test_schema_homes.py holds to the same values).
SLIDING = SlidingSettings()
PRODUCTS = ProductSettings()


def _sliding_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("sliding window")
    group.add_argument(
        "--overlap",
        type=float,
        default=SLIDING.overlap,
        help=f"fraction of a tile shared with its neighbour (default {SLIDING.overlap})",
    )
    group.add_argument(
        "--blend",
        choices=BLENDS,
        default=SLIDING.blend,
        help=f"how overlapping tiles' logits are weighted (default {SLIDING.blend})",
    )
    group.add_argument(
        "--batch-size",
        type=int,
        default=SLIDING.batch_size,
        help=f"tiles per forward pass (default {SLIDING.batch_size})",
    )
    group.add_argument(
        "--tta",
        action="store_true",
        help="also predict every tile in all 8 flips/transposes and average (about 8× the model time)",
    )
    group.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    group.add_argument("--fp32", action="store_true", help="no bf16/fp16 autocast on the GPU")
    group.add_argument(
        "--keep-going",
        action="store_true",
        help="exit 0 even when some scans failed (they are listed in prediction.json)",
    )


def _product_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("viewer, confidence and outlines")
    group.add_argument(
        "--viewer",
        action="store_true",
        help="also write the damage viewer, viewer/index.html (deep zoom; opens from disk)",
    )
    group.add_argument(
        "--iiif",
        action="store_true",
        help="also write the IIIF export, iiif/manifest.json (IIIF Image API 3 tiles, a "
        "Presentation 3 manifest, the outlines as W3C annotations; for Mirador, UV, any IIIF client)",
    )
    group.add_argument(
        "--iiif-base-url",
        help="the http(s) address iiif/ is published at, the base of its ids "
        f"(default {LOCAL_BASE_URL}: python -m http.server 8000 in the folder)",
    )
    group.add_argument(
        "--low-confidence",
        type=float,
        default=PRODUCTS.low_confidence,
        help="confidence below which a pixel counts as unsure in damage_areas.csv "
        f"(default {PRODUCTS.low_confidence})",
    )
    group.add_argument(
        "--outline-tolerance",
        type=float,
        default=PRODUCTS.outlines.tolerance,
        help="simplification of the outlines in px, 0 = exact pixel edges "
        f"(default {PRODUCTS.outlines.tolerance})",
    )
    group.add_argument(
        "--dpi",
        type=float,
        help="the scans' resolution in pixels per inch, for areas in cm² (overrides what the files "
        "say; default: each file's own, where it states one that is not a 72/96 dpi placeholder)",
    )
    group.add_argument(
        "--dpi-table",
        help="CSV with columns image (file name or stem) and dpi: each scan's resolution "
        "(overrides --dpi and the files)",
    )
    group.add_argument(
        "--outline-min-area",
        type=int,
        default=PRODUCTS.outlines.min_area,
        help="damage regions under this many px get no outline and are counted "
        f"(default {PRODUCTS.outlines.min_area})",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="heritage-damage-seg", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    predict = commands.add_parser(
        "predict",
        help="damage maps, overlays and areas for a folder or list of scans",
        description="Per image: masks/<stem>.png (class ids 0–15 at native resolution), "
        "overlays/<stem>.png (ARTeFACT palette, legend), confidence/<stem>.png, outlines/<stem>.geojson "
        "and .coco.json, and a row of damage_areas.csv; with --viewer the damage viewer viewer/index.html, "
        "with --iiif the IIIF manifest iiif/manifest.json.",
    )
    predict.add_argument("inputs", nargs="+", help="image files and/or folders of images")
    predict.add_argument("-o", "--output", required=True, help="output folder")
    predict.add_argument(
        "--checkpoint", help="a model_best.pt (default: the best encoder of --results)"
    )
    predict.add_argument(
        "--results", default="results", help="results folder of a pipeline run (default: results)"
    )
    predict.add_argument(
        "--artwork-masks",
        help="folder of masks with the scans' stems (0 = outside the artwork): those pixels become 255 "
        "and are left out of the areas (the model has no background class)",
    )
    predict.add_argument(
        "--overlay-max-side",
        type=int,
        default=OVERLAY_MAX_SIDE,
        help=f"longest side of the overlays in px (default {OVERLAY_MAX_SIDE})",
    )
    _sliding_arguments(predict)
    _product_arguments(predict)

    export = commands.add_parser(
        "export", help="ONNX (+ TorchScript) and a model card for one checkpoint"
    )
    export.add_argument("checkpoint", help="a model_best.pt")
    export.add_argument("-o", "--output", required=True, help="output folder")
    export.add_argument(
        "--metrics", help="its metrics.json (default: beside the checkpoint, if there)"
    )
    export.add_argument("--no-torchscript", action="store_true", help="ONNX only")
    _import_corrections_parser(commands)
    return parser


def _iso_date(text: str) -> str:
    try:
        return datetime.date.fromisoformat(text).isoformat()
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD") from err


def _import_corrections_parser(commands: argparse._SubParsersAction) -> None:
    corrections = commands.add_parser(
        "import-corrections",
        help="corrected outlines (GeoJSON, COCO, W3C) as a folder dataset to train on",
        description="Rasterises corrected outlines (predict's GeoJSON and COCO as edited in QGIS or "
        "exported by CVAT, W3C Web Annotations with SVG polygons) into class masks at the scans' "
        "native size: DATASET/images/, masks/ and metadata.csv, read with dataset.format: folder "
        "(docs/corrections.md).",
    )
    corrections.add_argument("outlines", nargs="+", help="the corrected outline files")
    corrections.add_argument(
        "--scans", nargs="+", required=True, help="the scans (files and/or folders), found by stem"
    )
    corrections.add_argument("-o", "--output", required=True, help="the dataset folder")
    corrections.add_argument("--reviewer", required=True, help="who reviewed the outlines")
    corrections.add_argument(
        "--unreviewed",
        choices=("clean", "ignore"),
        required=True,
        help="what pixels no outline covers become: clean (0, the whole scan was reviewed) or "
        "ignore (255, never trained on: a partial review)",
    )
    corrections.add_argument(
        "--date", type=_iso_date, help="date of the review, YYYY-MM-DD (default today)"
    )


def _run_import_corrections(args: argparse.Namespace) -> int:
    try:
        written = import_corrections(
            args.outlines,
            args.scans,
            args.output,
            Review(args.reviewer, args.unreviewed, args.date or ""),
        )
    except (DatasetError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for corrected in written:
        logging.info(
            "%s: %d outlines from %s",
            corrected.scan.name,
            len(corrected.corrections.pieces),
            corrected.corrections.source,
        )
    logging.info("%d corrected scans in %s", len(written), args.output)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S"
    )
    if args.command == "predict":
        try:
            products = ProductSettings(
                viewer=args.viewer,
                low_confidence=args.low_confidence,
                outlines=OutlineSettings(args.outline_tolerance, args.outline_min_area),
                iiif=args.iiif,
                iiif_base_url=args.iiif_base_url,
            )
            summary = predict_folder(
                args.inputs,
                args.output,
                checkpoint=args.checkpoint,
                results_dir=args.results,
                settings=SlidingSettings(
                    overlap=args.overlap,
                    blend=args.blend,
                    batch_size=args.batch_size,
                    tta_flip=args.tta,
                ),
                artwork_masks=args.artwork_masks,
                overlay_max_side=args.overlay_max_side,
                mixed_precision=not args.fp32,
                device_preference=args.device,
                products=products,
                dpi=args.dpi,
                dpi_table=args.dpi_table,
            )
        except (PredictError, ValueError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        # Failed images are reported and skipped; the exit status says whether any failed.
        return 1 if summary.failed and not args.keep_going else 0
    if args.command == "export":
        metrics = args.metrics
        if metrics is None and (Path(args.checkpoint).parent / "metrics.json").is_file():
            metrics = str(Path(args.checkpoint).parent / "metrics.json")
        export_model(
            args.checkpoint, args.output, metrics_file=metrics, torchscript=not args.no_torchscript
        )
        return 0
    if args.command == "import-corrections":
        return _run_import_corrections(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
