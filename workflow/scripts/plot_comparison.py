from heritage_damage_seg import plots
from heritage_damage_seg.io import read_json
from heritage_damage_seg.logs import logged
from heritage_damage_seg.tables import write_comparison_html

with logged(snakemake.log[0]) as log:  # noqa: F821 (injected by Snakemake)
    comparison = read_json(snakemake.input.comparison)  # noqa: F821
    dpi = snakemake.params.dpi  # noqa: F821
    plots.plot_comparison_ci(comparison, snakemake.output.ci, dpi=dpi)  # noqa: F821
    plots.plot_iou_heatmap(comparison, snakemake.output.heatmap, dpi=dpi)  # noqa: F821
    plots.plot_accuracy_vs_speed(comparison, snakemake.output.speed, dpi=dpi)  # noqa: F821
    write_comparison_html(comparison, snakemake.output.table)  # noqa: F821
    log.info("wrote %s", ", ".join(snakemake.output))  # noqa: F821
