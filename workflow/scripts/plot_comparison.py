from heritage_damage_seg.io import read_json
from heritage_damage_seg.logs import logged
from heritage_damage_seg.report import comparison_plots
from heritage_damage_seg.report.tables import write_comparison_html

with logged(snakemake.log[0]) as log:
    comparison = read_json(snakemake.input.comparison)
    dpi = snakemake.params.dpi
    comparison_plots.plot_comparison_ci(comparison, snakemake.output.ci, dpi=dpi)
    comparison_plots.plot_iou_heatmap(comparison, snakemake.output.heatmap, dpi=dpi)
    comparison_plots.plot_accuracy_vs_speed(comparison, snakemake.output.speed, dpi=dpi)
    write_comparison_html(comparison, snakemake.output.table)
    log.info("wrote %s", ", ".join(snakemake.output))
