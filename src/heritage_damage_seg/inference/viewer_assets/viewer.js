// The damage viewer (heritage_damage_seg.inference.viewer): a scan viewer and, kept on its
// viewport, an overlay viewer of the class (or confidence) pyramid coloured by an SVG filter.
(function () {
  "use strict";
  const data = window.HDS_VIEWER;
  const VIRIDIS = ["#440154", "#472d7b", "#3b528b", "#2c728e", "#21918c", "#28ae80", "#5ec962", "#addc30", "#fde725"];
  const DEFAULT_OPACITY = 0.6;
  const classes = data.classes.concat([data.outside]);
  const state = {
    scan: -1,
    layer: "classes",
    visible: new Map(classes.map((c) => [c.id, c.id !== 0])),
    opacity: new Map(classes.map((c) => [c.id, DEFAULT_OPACITY])),
  };
  const stats = { tilesLoaded: 0, tilesFailed: 0, failures: [], openFailures: [] };

  const common = {
    prefixUrl: "openseadragon/images/",
    drawer: "canvas",
    crossOriginPolicy: false,
    loadTilesWithAjax: false,
    maxZoomPixelRatio: 8,
    visibilityRatio: 0.5,
  };
  const scanViewer = OpenSeadragon(Object.assign({}, common, {
    id: "scan-view",
    showNavigator: true,
    navigatorPosition: "BOTTOM_RIGHT",
    showRotationControl: false,
  }));
  // The overlay lies on the scan's drawing, under the scan viewer's buttons and navigator, and
  // follows its viewport exactly: no input, no animation, no constraints of its own.
  scanViewer.canvas.appendChild(document.getElementById("overlay-view"));
  const overlayViewer = OpenSeadragon(Object.assign({}, common, {
    id: "overlay-view",
    mouseNavEnabled: false,
    showNavigationControl: false,
    imageSmoothingEnabled: false,
    animationTime: 0,
    springStiffness: 100,
    visibilityRatio: 0,
    minZoomImageRatio: 0,
    maxZoomPixelRatio: Infinity,
    constrainDuringPan: false,
  }));

  function follow() {
    const target = overlayViewer.viewport;
    target.zoomTo(scanViewer.viewport.getZoom(true), null, true);
    target.panTo(scanViewer.viewport.getCenter(true), true);
  }
  scanViewer.addHandler("update-viewport", follow);
  scanViewer.addHandler("resize", follow);

  for (const viewer of [scanViewer, overlayViewer]) {
    viewer.addHandler("tile-loaded", () => { stats.tilesLoaded += 1; });
    viewer.addHandler("tile-load-failed", (event) => {
      stats.tilesFailed += 1;
      stats.failures.push(event.message + " " + (event.tile && event.tile.getUrl ? event.tile.getUrl() : ""));
    });
    viewer.addHandler("open-failed", (event) => { stats.openFailures.push(event.message); });
  }

  function element(tag, attributes, text) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attributes || {})) node.setAttribute(key, value);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function rgb(hex) {
    return [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255);
  }

  function percent(value) {
    return value === null || value === undefined ? "–" : Number(value).toFixed(2);
  }

  // Grey value v of the class tiles is the class id: a 256-entry discrete table maps it to the
  // class colour (R, G, B) and to its opacity, 0 when the class is off (and for Clean).
  function updateClassFilter() {
    const channels = [[], [], [], []];
    for (let v = 0; v < 256; v += 1) {
      const known = classes.find((c) => c.id === v);
      const colour = known ? rgb(known.colour) : [0, 0, 0];
      const alpha = known && state.visible.get(v) ? state.opacity.get(v) : 0;
      colour.concat([alpha]).forEach((value, i) => channels[i].push(value.toFixed(4)));
    }
    const functions = document.querySelectorAll("#class-colours feComponentTransfer > *");
    functions.forEach((node, i) => node.setAttribute("tableValues", channels[i].join(" ")));
  }

  function updateConfidenceFilter() {
    const ramp = VIRIDIS.map(rgb);
    const functions = document.querySelectorAll("#confidence-colours feComponentTransfer > *");
    for (let i = 0; i < 3; i += 1) {
      functions[i].setAttribute("tableValues", ramp.map((colour) => colour[i].toFixed(4)).join(" "));
    }
    functions[3].setAttribute("slope", document.getElementById("confidence-opacity").value);
    document.getElementById("ramp").style.background = "linear-gradient(to right, " + VIRIDIS.join(", ") + ")";
  }

  function showLayer(layer) {
    state.layer = layer;
    const overlay = document.getElementById("overlay-view");
    overlay.className = "view " + layer;
    document.getElementById("classes-legend").hidden = layer !== "classes";
    document.getElementById("confidence-legend").hidden = layer !== "confidence";
    if (state.scan >= 0 && layer !== "none") openOverlay(data.scans[state.scan].tiles[layer]);
  }

  function openOverlay(source) {
    overlayViewer.addOnceHandler("open", follow);
    overlayViewer.open(source);
  }

  function legendRow(scan, cls, area) {
    const row = element("tr", { "data-class": String(cls.id) });
    const toggle = element("input", { type: "checkbox", "aria-label": "show " + cls.name });
    toggle.checked = state.visible.get(cls.id);
    toggle.addEventListener("change", () => { state.visible.set(cls.id, toggle.checked); updateClassFilter(); });
    const slider = element("input", { type: "range", min: "0", max: "1", step: "0.05", "aria-label": cls.name + " opacity" });
    slider.value = String(state.opacity.get(cls.id));
    slider.addEventListener("input", () => { state.opacity.set(cls.id, Number(slider.value)); updateClassFilter(); });
    const swatch = element("span", { class: "swatch" });
    swatch.style.background = cls.colour;
    const cells = [toggle, swatch, document.createTextNode(cls.name),
      element("span", { class: "px", "data-px": String(area.px) }, Number(area.px).toLocaleString("en")),
      element("span", { class: "pct", "data-pct": String(area.pct) }, percent(area.pct)), slider];
    cells.forEach((content, i) => {
      const cell = element("td", i === 3 || i === 4 ? { class: "number" } : {});
      cell.appendChild(content);
      row.appendChild(cell);
    });
    if (!area.px) row.classList.add("absent");
    if (area.mean_confidence !== null && area.mean_confidence !== undefined) {
      row.title = "mean confidence " + (100 * area.mean_confidence).toFixed(1) + " %, " +
        percent(area.low_confidence_pct) + " % of its pixels below " + (100 * data.low_confidence).toFixed(0) + " %";
    }
    return row;
  }

  function fillLegend(scan) {
    const body = document.querySelector("#legend tbody");
    body.replaceChildren();
    for (const cls of data.classes) body.appendChild(legendRow(scan, cls, scan.classes[cls.id]));
    if (scan.outside_pixels > 0) {
      body.appendChild(legendRow(scan, data.outside, { px: scan.outside_pixels, pct: null }));
    }
  }

  function fillSummary(scan) {
    document.getElementById("scan-name").textContent = scan.name;
    document.getElementById("scan-summary").textContent = scan.width + " × " + scan.height + " px; damaged " +
      percent(scan.damaged_pct) + " % of " + scan.scored_pixels.toLocaleString("en") + " scored pixels" +
      (scan.regions !== null && scan.regions !== undefined ? "; " + scan.regions + " damage regions outlined" : "");
    document.getElementById("confidence-summary").textContent = scan.mean_confidence === null ? "" :
      "Mean confidence " + (100 * scan.mean_confidence).toFixed(1) + " %; " + percent(scan.low_confidence_pct) +
      " % of the pixels below " + (100 * data.low_confidence).toFixed(0) + " %.";
    const files = document.getElementById("files");
    files.replaceChildren(document.createTextNode("Files (beside this folder): "));
    Object.entries(scan.files).forEach(([label, href], i) => {
      if (i) files.appendChild(document.createTextNode(", "));
      files.appendChild(element("a", { href: href }, label));
    });
  }

  function selectScan(index) {
    if (index === state.scan || index < 0 || index >= data.scans.length) return;
    state.scan = index;
    const scan = data.scans[index];
    document.querySelectorAll("#scan-list a").forEach((a, i) => a.classList.toggle("current", i === index));
    fillLegend(scan);
    fillSummary(scan);
    scanViewer.addOnceHandler("open", follow);
    scanViewer.open(scan.tiles.scan);
    if (state.layer !== "none") openOverlay(scan.tiles[state.layer]);
  }

  function fillScanList() {
    const list = document.getElementById("scan-list");
    data.scans.forEach((scan, i) => {
      const link = element("a", { href: "#" + encodeURIComponent(scan.stem) }, scan.name + " ");
      link.appendChild(element("small", {}, "damaged " + percent(scan.damaged_pct) + " %"));
      link.addEventListener("click", () => selectScan(i));
      const item = element("li");
      item.appendChild(link);
      list.appendChild(item);
    });
  }

  function scanFromHash() {
    const stem = decodeURIComponent(window.location.hash.slice(1));
    const index = data.scans.findIndex((scan) => scan.stem === stem);
    return index >= 0 ? index : 0;
  }

  function setAll(visible) {
    classes.forEach((c) => { if (c.id !== 0) state.visible.set(c.id, visible); });
    document.querySelectorAll("#legend tbody tr").forEach((row) => {
      const id = Number(row.dataset.class);
      if (id !== 0) row.querySelector("input[type=checkbox]").checked = visible;
    });
    updateClassFilter();
  }

  document.title = data.title;
  document.getElementById("title").textContent = data.title;
  document.getElementById("osd-version").textContent = data.openseadragon;
  document.querySelectorAll("input[name=layer]").forEach((input) => {
    input.addEventListener("change", () => { if (input.checked) showLayer(input.value); });
  });
  document.getElementById("confidence-opacity").addEventListener("input", updateConfidenceFilter);
  document.getElementById("all-on").addEventListener("click", () => setAll(true));
  document.getElementById("all-off").addEventListener("click", () => setAll(false));
  window.addEventListener("hashchange", () => selectScan(scanFromHash()));
  updateClassFilter();
  updateConfidenceFilter();
  fillScanList();
  showLayer("classes");
  if (data.scans.length) selectScan(scanFromHash());

  // For tests and the curious: the viewers, the tile counts, and whether every tile is drawn.
  window.hdsViewer = {
    scanViewer: scanViewer,
    overlayViewer: overlayViewer,
    stats: stats,
    state: state,
    fullyLoaded: function () {
      return [scanViewer, overlayViewer].every((viewer) => {
        const count = viewer.world.getItemCount();
        for (let i = 0; i < count; i += 1) if (!viewer.world.getItemAt(i).getFullyLoaded()) return false;
        return count > 0 || (viewer === overlayViewer && state.layer === "none");
      });
    },
    // Viewer-element coordinates (CSS px from the top-left of the image area) of a scan pixel.
    screenPoint: function (x, y) {
      const point = scanViewer.viewport.imageToViewerElementCoordinates(new OpenSeadragon.Point(x, y));
      return { x: point.x, y: point.y };
    },
  };
})();
