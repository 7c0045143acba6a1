/* nehmap viewer: NiiVue with a case picker, views, a layer list with opacity, an NEH
   threshold, a colour bar and a read-out of every layer under the crosshair.
   The cases are the JSON in <script id="nehmap-viewer-data">; nothing is fetched.
   window.nehmapViewer exposes the state for checks: ready, errors, nv, showCase(i),
   setLayer(i, on). */
(function () {
  "use strict";
  var state = { ready: false, errors: [], caseIndex: -1, nv: null };
  window.nehmapViewer = state;
  var root = document.getElementById("nehmap-viewer");
  var dataNode = document.getElementById("nehmap-viewer-data");
  if (!root || !dataNode) { return; }
  var lib = window.niivue;
  var cases = JSON.parse(dataNode.textContent);
  var picker = root.querySelector(".nv-case");
  var layerList = root.querySelector(".nv-layers");
  var readout = root.querySelector(".nv-readout tbody");
  var notes = root.querySelector(".nv-notes");
  var title = root.querySelector(".nv-title");
  var threshold = root.querySelector(".nv-threshold");
  var thresholdValue = root.querySelector(".nv-threshold-value");
  var shown = [];  // per layer: is it on

  function fail(message) {
    state.errors.push(String(message));
    var p = document.createElement("p");
    p.className = "nv-error";
    p.textContent = "The viewer could not start: " + message;
    root.appendChild(p);
  }
  if (!lib || !lib.Niivue) { fail("the NiiVue library is missing."); return; }
  var canvas = root.querySelector("canvas");
  if (!canvas.getContext("webgl2")) {
    fail("this browser offers no WebGL2. The figures above show the same cases.");
    return;
  }
  root.classList.add("nv-on");
  var nv = new lib.Niivue({
    backColor: [0, 0, 0, 1],
    crosshairColor: [1, 0.9, 0.2, 1],
    show3Dcrosshair: true,
    isColorbar: true,
    dragAndDropEnabled: false,
    multiplanarShowRender: lib.SHOW_RENDER ? lib.SHOW_RENDER.ALWAYS : 1,
    isResizeCanvas: true,
    isRadiologicalConvention: true,
    logLevel: "error"
  });
  state.nv = nv;

  function fmt(layer, value) {
    if (layer.labels) {
      var i = layer.labels.I.indexOf(Math.round(value));
      return i > 0 ? Math.round(value) + " " + layer.labels.labels[i] : String(Math.round(value));
    }
    if (!isFinite(value)) { return "–"; }
    return Number(value).toPrecision(3);
  }

  function updateReadout(location) {
    var c = cases[state.caseIndex];
    if (!c || !location || !location.values) { return; }
    readout.textContent = "";
    c.layers.forEach(function (layer, i) {
      var v = location.values[i] ? location.values[i].value : NaN;
      var tr = document.createElement("tr");
      var th = document.createElement("th");
      th.textContent = layer.name;
      var td = document.createElement("td");
      td.textContent = fmt(layer, v);
      tr.appendChild(th);
      tr.appendChild(td);
      readout.appendChild(tr);
    });
    var mm = location.mm || [0, 0, 0];
    root.querySelector(".nv-position").textContent =
      "crosshair at " + [0, 1, 2].map(function (k) { return Number(mm[k]).toFixed(1); }).join(", ") + " mm";
  }
  nv.onLocationChange = updateReadout;

  function setLayer(i, on) {
    var c = cases[state.caseIndex];
    shown[i] = !!on;
    var slider = layerList.querySelector('input[data-opacity="' + i + '"]');
    var box = layerList.querySelector('input[data-toggle="' + i + '"]');
    if (box) { box.checked = !!on; }
    nv.setOpacity(i, on ? Number(slider ? slider.value : c.layers[i].opacity) : 0);
    if (hasColorbar(c.layers[i])) { nv.volumes[i].colorbarVisible = !!on; }
    nv.drawScene();
  }
  state.setLayer = setLayer;

  function hasColorbar(layer) {
    return layer.kind === "probability" || layer.kind === "uncertainty";
  }

  function buildLayerList(c) {
    layerList.textContent = "";
    c.layers.forEach(function (layer, i) {
      var row = document.createElement("div");
      row.className = "nv-layer";
      var label = document.createElement("label");
      var box = document.createElement("input");
      box.type = "checkbox";
      box.checked = layer.visible;
      box.dataset.toggle = String(i);
      box.addEventListener("change", function () { setLayer(i, box.checked); });
      label.appendChild(box);
      label.appendChild(document.createTextNode(" " + layer.name));
      var slider = document.createElement("input");
      slider.type = "range";
      slider.min = "0"; slider.max = "1"; slider.step = "0.05";
      slider.value = String(layer.opacity);
      slider.dataset.opacity = String(i);
      slider.title = "opacity of " + layer.name;
      slider.addEventListener("input", function () { if (shown[i]) { setLayer(i, true); } });
      row.appendChild(label);
      row.appendChild(slider);
      layerList.appendChild(row);
    });
  }

  function probabilityIndex(c) {
    for (var i = 0; i < c.layers.length; i++) {
      if (c.layers[i].kind === "probability") { return i; }
    }
    return -1;
  }

  function setThreshold(value) {
    var c = cases[state.caseIndex];
    var i = probabilityIndex(c);
    thresholdValue.textContent = Number(value).toFixed(2);
    if (i < 0 || !nv.volumes[i]) { return; }
    nv.volumes[i].cal_min = Math.max(Number(value), 0.004);
    nv.volumes[i].cal_max = 1;
    nv.updateGLVolume();
  }
  threshold.addEventListener("input", function () { setThreshold(threshold.value); });

  async function showCase(index) {
    var c = cases[index];
    state.caseIndex = index;
    picker.value = String(index);
    title.textContent = c.title || c.id;
    notes.textContent = c.notes.join(" ");
    while (nv.volumes.length) { nv.removeVolume(nv.volumes[nv.volumes.length - 1]); }
    shown = [];
    for (var i = 0; i < c.layers.length; i++) {
      var layer = c.layers[i];
      var options = {
        base64: layer.data,
        name: "layer" + i + ".nii.gz",
        colormap: layer.colormap || "gray",
        opacity: layer.visible ? layer.opacity : 0,
        cal_min: layer.cal_min,
        cal_max: layer.cal_max,
        colorbarVisible: hasColorbar(layer) && layer.visible
      };
      if (layer.labels) { options.colormapLabel = layer.labels; }
      var image = await lib.NVImage.loadFromBase64(options);
      if (layer.labels && image.setColormapLabel) { image.setColormapLabel(layer.labels); }
      nv.addVolume(image);
      shown.push(layer.visible);
    }
    buildLayerList(c);
    var p = probabilityIndex(c);
    threshold.disabled = p < 0;
    var t = p >= 0 && c.layers[p].threshold !== null ? c.layers[p].threshold : 0.5;
    threshold.value = String(t);
    setThreshold(t);
    if (c.focus) { nv.scene.crosshairPos = c.focus.slice(); }
    nv.drawScene();
    nv.createOnLocationChange();
  }
  state.showCase = showCase;

  cases.forEach(function (c, i) {
    var option = document.createElement("option");
    option.value = String(i);
    option.textContent = c.id + (c.title ? " — " + c.title : "");
    picker.appendChild(option);
  });
  picker.addEventListener("change", function () {
    showCase(Number(picker.value)).catch(function (e) { fail(e && e.message ? e.message : e); });
  });
  var views = { axial: 0, coronal: 1, sagittal: 2, multi: 3, render: 4 };
  root.querySelectorAll("button[data-view]").forEach(function (button) {
    button.addEventListener("click", function () {
      nv.setSliceType(views[button.dataset.view]);
      root.querySelectorAll("button[data-view]").forEach(function (b) {
        b.classList.toggle("nv-active", b === button);
      });
    });
  });

  nv.attachToCanvas(canvas)
    .then(function () {
      nv.setSliceType(3);
      return showCase(0);
    })
    .then(function () { state.ready = true; root.dataset.ready = "1"; })
    .catch(function (e) { fail(e && e.message ? e.message : e); });
})();
