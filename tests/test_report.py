"""`snakemake --report` opened in a real headless browser (Debian's chromium via chromedriver)."""

import time

import pytest
from conftest import snakemake

ENCODERS = ("convnext_tiny", "segformer_b3", "maxvit_tiny")
PER_ENCODER = {
    "metrics": ["class distribution", "confusion matrix", "IoU per class", "metrics table"],
    "samples": ["error maps", "prediction grid"],
    "per-class views": [f"class view {rank}" for rank in range(1, 7)],
    "training": ["training curves"],
}
COMPARISON = [
    "accuracy vs speed",
    "comparison table",
    "IoU heatmap",
    "mIoU with confidence intervals",
]


def wait_for(condition, timeout=20.0, ready=bool):
    """The first value of ``condition()`` that is ``ready``, or the last one after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if ready(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


@pytest.mark.slow
def test_the_report_shows_every_category_and_figure_without_a_broken_image(
    tiny_run, browser, tmp_path
):
    from selenium.webdriver.common.by import By

    report = tmp_path / "report.html"
    result = snakemake("--report", str(report), workdir=tiny_run, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    browser.get(report.as_uri())
    nav = lambda: browser.find_element(By.TAG_NAME, "nav")  # noqa: E731
    assert wait_for(lambda: "Model comparison" in nav().text), nav().text
    assert (
        "encoders (U-Net decoders)" in browser.find_element(By.TAG_NAME, "body").text
    )  # the workflow description

    def open_menu(*path):
        browser.get(report.as_uri())
        for entry in path:
            link = wait_for(
                lambda entry=entry: browser.find_elements(
                    By.XPATH, f"//nav//*[normalize-space(text())='{entry}']"
                )
            )
            assert link, f"no menu entry {entry!r} under {path}: {nav().text}"
            link[0].click()

    def shown_rows():
        return wait_for(lambda: browser.find_elements(By.XPATH, "//nav//tr[td]"))

    def check_each_result(expected_labels):
        labels = [row.find_elements(By.TAG_NAME, "td")[-2].text for row in shown_rows()]
        assert sorted(labels) == sorted(expected_labels)
        for position in range(len(labels)):
            row = shown_rows()[position]
            row.find_element(By.CSS_SELECTOR, "a[iconname='eye']").click()
            shown = wait_for(
                lambda: browser.execute_script(
                    "return Array.from(document.querySelectorAll('img, iframe'))"
                    ".filter(e => (e.src || '').startsWith('data:image/png')"
                    " || (e.src || '').startsWith('data:text/html'))"
                    ".map(e => [e.tagName, e.src.slice(0, 80)])"
                )
            )
            assert shown, f"{labels[position]}: nothing displayed"
            broken = wait_for(
                lambda: browser.execute_script(
                    "const imgs = Array.from(document.images);"
                    "return imgs.every(i => i.complete)"
                    " ? imgs.filter(i => i.naturalWidth === 0).map(i => i.src.slice(0, 80)) : null"
                ),
                ready=lambda value: value is not None,
            )
            assert broken == [], f"{labels[position]}: broken images {broken}"
            if shown[0][0] == "IMG":
                width = browser.execute_script(
                    "return Array.from(document.images).filter(i => i.src.startsWith('data:image/png'))[0].naturalWidth"
                )
                assert width > 300, labels[position]
            else:  # an HTML table: its document has rendered table rows
                rows = browser.execute_script(
                    "const f = document.querySelector('iframe'); const d = f.contentDocument;"
                    "return d ? d.querySelectorAll('tr').length : -1"
                )
                assert rows != 0, labels[position]

    for encoder in ENCODERS:
        for subcategory, labels in PER_ENCODER.items():
            open_menu(encoder, subcategory)
            check_each_result(labels)
    open_menu("Model comparison")
    check_each_result(COMPARISON)


@pytest.mark.slow
def test_the_zip_report_holds_the_page_and_every_figure(tiny_run, tmp_path):
    import zipfile

    report = tmp_path / "report.zip"
    result = snakemake("--report", str(report), workdir=tiny_run)
    assert result.returncode == 0, result.stderr[-3000:]
    with zipfile.ZipFile(report) as archive:
        names = archive.namelist()
        assert archive.testzip() is None  # every member's CRC checks out
    assert any(name.endswith("report.html") for name in names)
    figures = [name for name in names if name.endswith(".png")]
    per_encoder = (
        sum(len(titles) for titles in PER_ENCODER.values()) - 1
    )  # the metrics table is HTML
    expected = len(ENCODERS) * per_encoder + len(COMPARISON) - 1  # so is the comparison table
    assert len(figures) >= expected, sorted(figures)
    # Files are stored by content hash and base name: one confusion matrix per encoder.
    assert sum(name.endswith("/confusion_matrix.png") for name in figures) == len(ENCODERS)
