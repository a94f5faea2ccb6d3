from heritage_damage_seg import plots
from heritage_damage_seg.io import read_json
from heritage_damage_seg.logs import logged
from heritage_damage_seg.tables import write_metrics_html

with logged(snakemake.log[0]) as log:  # noqa: F821 (injected by Snakemake)
    metrics = read_json(snakemake.input.metrics)  # noqa: F821
    dpi = snakemake.params.dpi  # noqa: F821
    plots.plot_confusion_matrix(metrics, snakemake.output.confusion, dpi=dpi)  # noqa: F821
    plots.plot_per_class_iou(metrics, snakemake.output.iou, dpi=dpi)  # noqa: F821
    plots.plot_class_distribution(metrics, snakemake.output.distribution, dpi=dpi)  # noqa: F821
    write_metrics_html(metrics, snakemake.output.table)  # noqa: F821
    log.info("wrote %s", ", ".join(snakemake.output))  # noqa: F821
