from heritage_damage_seg.io import read_json
from heritage_damage_seg.logs import logged
from heritage_damage_seg.report import plots
from heritage_damage_seg.report.tables import write_metrics_html

with logged(snakemake.log[0]) as log:
    metrics = read_json(snakemake.input.metrics)
    dpi = snakemake.params.dpi
    plots.plot_confusion_matrix(metrics, snakemake.output.confusion, dpi=dpi)
    plots.plot_per_class_iou(metrics, snakemake.output.iou, dpi=dpi)
    plots.plot_class_distribution(metrics, snakemake.output.distribution, dpi=dpi)
    write_metrics_html(metrics, snakemake.output.table)
    log.info("wrote %s", ", ".join(snakemake.output))
