// samembed serve: the page. Plain JavaScript, no build step, no third-party code.
"use strict";
const main = document.getElementById("main");
const statusLine = document.getElementById("status");
window.samembedTimings = [];  // one entry per prompt answered: {server, decode, encode, fetch, total} in ms
window.samembedLast = null;   // the last prompt's answer (the tests read it)

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined && v !== false) node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) if (c !== null && c !== undefined) node.append(c.nodeType ? c : String(c));
  return node;
}
function show(...nodes) { main.replaceChildren(...nodes); }
function say(text) { statusLine.textContent = text; }
async function api(path, options) {
  const res = await fetch(path, options);
  if (!res.ok) {
    let text = await res.text();
    try { text = JSON.parse(text).error || text; } catch (e) { /* plain text */ }
    throw new Error(text.trim());
  }
  return res;
}
async function getJSON(path) { return (await api(path)).json(); }
function groupPath(d, g) { return `/api/groups/${encodeURIComponent(d)}/${encodeURIComponent(g)}`; }
function fail(err) { say(""); main.append(el("p", {class: "error"}, String(err.message || err))); }
function serverTiming(res) {
  const out = {};
  for (const part of (res.headers.get("Server-Timing") || "").split(",")) {
    const m = part.trim().match(/^(\w+);dur=([\d.]+)/);
    if (m) out[m[1]] = parseFloat(m[2]);
  }
  return out;
}

// ---------------------------------------------------------------- routes
const routes = [
  [/^#?\/?$/, home],
  [/^#\/g\/([^/]+)\/([^/?]+)(?:\?(.*))?$/, browse],
  [/^#\/i\/([^/]+)\/([^/]+)\/(\d+)$/, imageView],
  [/^#\/s\/([^/]+)\/([^/]+)\/(\d+)$/, sceneView],
  [/^#\/search\/([^/]+)\/([^/?]+)\?(.*)$/, searchView],
  [/^#\/results$/, resultsView],
];
function route() {
  const hash = location.hash || "#/";
  for (const [pattern, view] of routes) {
    const m = hash.match(pattern);
    if (m) { view(...m.slice(1).map(v => v === undefined ? v : decodeURIComponent(v))).catch(fail); return; }
  }
  show(el("p", {class: "error"}, "no such page"));
}
window.addEventListener("hashchange", route);

// ---------------------------------------------------------------- the cache
async function home() {
  say("");
  const {groups} = await getJSON("/api/groups");
  if (!groups.length) { show(el("p", {}, "This cache holds no groups: run samembed extract first.")); return; }
  show(el("h2", {}, "Cache"), el("div", {class: "cards"}, groups.map(g => g.damaged
    ? el("div", {class: "card"}, el("h3", {}, g.key), el("p", {class: "error"}, `damaged: ${g.damaged}`))
    : el("div", {class: "card"},
        el("h3", {}, `${g.dataset} / ${g.group}`),
        el("div", {class: "muted"}, `${g.images.toLocaleString()} images · ${g.classes.length} classes · ${g.task}`),
        el("div", {class: "muted"}, `encoder ${g.encoder} ${g.variant || ""} · input ${g.img_size} · grid ${g.grid}`),
        g.composite ? el("div", {class: "muted"}, `bands ${g.composite.bands.join(",")} · stretch ${g.composite.stretch.kind}`) : null,
        el("p", {},
          el("a", {href: `#/g/${g.dataset}/${g.group}`}, "Browse images"),
          g.scenes.length ? [" · ", g.scenes.map((s, n) => el("a", {href: `#/s/${g.dataset}/${g.group}/${n}`}, `scene ${s} `))] : null),
        g.promptable ? el("div", {class: "muted"}, "click an image to prompt SAM") : null))));
}

async function browse(dataset, group, query) {
  const params = new URLSearchParams(query || "");
  const offset = parseInt(params.get("offset") || "0", 10), limit = 60;
  params.set("offset", offset); params.set("limit", limit);
  const base = groupPath(dataset, group);
  say("reading the index…");
  const [page, {groups}] = await Promise.all([getJSON(`${base}/images?${params}`), getJSON("/api/groups")]);
  const info = groups.find(g => g.key === `${dataset}/${group}`);
  say("");
  const go = changes => {
    const p = new URLSearchParams(query || "");
    for (const [k, v] of Object.entries(changes)) { if (v === "" || v === null) p.delete(k); else p.set(k, v); }
    location.hash = `#/g/${dataset}/${group}?${p}`;
  };
  const select = (name, options, value) => el("select", {onchange: e => go({[name]: e.target.value, offset: 0})},
    options.map(([v, label]) => el("option", {value: v, selected: v === value}, label)));
  const filters = el("div", {class: "filters"},
    el("strong", {}, `${dataset} / ${group}`),
    select("class", [["", "every class"], ...info.classes.map(c => [c, c])], params.get("class") || ""),
    page.splits.length ? select("split", [["", "every split"], ...page.splits.map(s => [s, s])], params.get("split") || "") : null,
    select("state", [["all", "all images"], ["usable", "usable"], ["blank", "blank (no data)"], ["skipped", "skipped (unreadable)"]], params.get("state") || "all"),
    el("input", {placeholder: "id contains…", value: params.get("q") || "", onchange: e => go({q: e.target.value, offset: 0})}),
    el("span", {class: "muted", id: "count"}, `${page.total.toLocaleString()} images · ${offset + 1}–${Math.min(offset + limit, page.total)}`),
    el("button", {disabled: offset === 0, onclick: () => go({offset: Math.max(0, offset - limit)})}, "◀ previous"),
    el("button", {disabled: offset + limit >= page.total, onclick: () => go({offset: offset + limit})}, "next ▶"));
  const tiles = page.items.map(item => el("a", {class: `tile ${item.state}`, href: `#/i/${dataset}/${group}/${item.row}`, title: item.id, "data-row": item.row},
    el("img", {src: `${base}/images/${item.row}/image.png?side=128`, loading: "lazy", alt: item.id}),
    el("div", {class: "label"}, item.id), el("div", {class: "muted label"}, `${item.class}${item.split ? " · " + item.split : ""}${item.state !== "usable" ? " · " + item.state : ""}`)));
  show(filters, el("div", {class: "grid", id: "grid"}, tiles));
}

// ---------------------------------------------------------------- prompting on an image
// A stage: the image, the mask over it and a canvas for the prompt's marks. Click: a foreground
// point; shift-click: a background point; drag: a box. Coordinates are sent in the image's pixels.
function makeStage(src, width, height, maxSide) {
  const scale = Math.min(1, maxSide / Math.max(width, height)) * (Math.max(width, height) < 400 ? 400 / Math.max(width, height) : 1);
  const w = Math.round(width * scale), h = Math.round(height * scale);
  const base = el("img", {class: "base", src, alt: "image"});
  base.style.width = `${w}px`; base.style.height = `${h}px`;
  const truth = el("img", {alt: ""}), mask = el("img", {alt: "", id: "mask"});
  for (const layer of [truth, mask]) { layer.style.width = `${w}px`; layer.style.height = `${h}px`; layer.hidden = true; }
  const marks = el("canvas", {width: w, height: h, id: "marks"});
  const stage = el("div", {class: "stage", id: "stage"}, base, truth, mask, marks);
  return {stage, base, truth, mask, marks, scale, w, h};
}

function drawMarks(canvas, scale, prompt, offset) {
  const ctx = canvas.getContext("2d");
  const [ox, oy] = offset || [0, 0];
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (prompt.box) {
    const [x0, y0, x1, y1] = prompt.box;
    ctx.strokeStyle = "yellow"; ctx.lineWidth = 2;
    ctx.strokeRect((x0 - ox) * scale, (y0 - oy) * scale, (x1 - x0) * scale, (y1 - y0) * scale);
  }
  prompt.points.forEach(([x, y], k) => {
    const fg = prompt.labels[k] === 1;
    ctx.strokeStyle = fg ? "lime" : "red"; ctx.lineWidth = 3;
    const cx = (x - ox) * scale, cy = (y - oy) * scale, r = 6;
    ctx.beginPath();
    if (fg) { ctx.moveTo(cx - r, cy); ctx.lineTo(cx + r, cy); ctx.moveTo(cx, cy - r); ctx.lineTo(cx, cy + r); }
    else { ctx.moveTo(cx - r, cy - r); ctx.lineTo(cx + r, cy + r); ctx.moveTo(cx + r, cy - r); ctx.lineTo(cx - r, cy + r); }
    ctx.stroke();
  });
}

// Mouse input on a stage: calls onPrompt(kind, values) in the stage's own pixels (before scaling).
function listen(target, scale, onPoint, onBox) {
  let down = null;
  target.addEventListener("mousedown", e => { down = [e.offsetX, e.offsetY]; });
  target.addEventListener("mouseup", e => {
    if (!down) return;
    const [x0, y0] = down, x1 = e.offsetX, y1 = e.offsetY;
    down = null;
    if (Math.abs(x1 - x0) > 4 && Math.abs(y1 - y0) > 4) {
      onBox([Math.min(x0, x1) / scale, Math.min(y0, y1) / scale, Math.max(x0, x1) / scale, Math.max(y0, y1) / scale]);
    } else {
      onPoint([x1 / scale, y1 / scale], e.shiftKey ? 0 : 1);
    }
  });
}

async function timedPrompt(url, prompt, overlay) {
  const t0 = performance.now();
  const res = await api(url, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(prompt)});
  const answer = await res.json();
  const t1 = performance.now();
  const url0 = answer.masks ? answer.masks[answer.choice] : answer.mask;
  overlay.src = url0; overlay.hidden = false;
  await overlay.decode();
  await new Promise(r => requestAnimationFrame(() => r()));
  const t2 = performance.now();
  const timing = serverTiming(res);
  const entry = {decode: timing.decode || 0, encode: timing.encode || 0, server: (timing.decode || 0) + (timing.encode || 0),
                 fetch: t1 - t0, total: t2 - t0};
  window.samembedTimings.push(entry);
  window.samembedLast = answer;
  return [answer, entry];
}

async function imageView(dataset, group, row) {
  const base = groupPath(dataset, group);
  const [info, {groups}] = await Promise.all([getJSON(`${base}/images/${row}`), getJSON("/api/groups")]);
  const g = groups.find(x => x.key === `${dataset}/${group}`);
  const st = makeStage(`${base}/images/${row}/image.png`, info.width, info.height, 720);
  let prompt = {points: [], labels: [], box: null}, answer = null, choice = 0;
  const scoreLine = el("p", {id: "score"}, g.promptable ? "Click: foreground point · shift-click: background point · drag: box" : "This group holds no SAM image embedding to prompt.");
  const candidates = el("div", {id: "candidates"});
  const saved = el("p", {class: "muted", id: "saved"});
  const showChoice = k => {
    choice = k; st.mask.src = answer.masks[k];
    scoreLine.textContent = `mask ${k + 1} of 3 · predicted IoU ${answer.scores[k].toFixed(3)} · ${answer.pixels[k]} pixels` + (k === answer.choice ? " (best)" : "");
    candidates.replaceChildren(...answer.masks.map((_, j) => el("button", {class: j === k ? "on" : "", onclick: () => showChoice(j)}, `mask ${j + 1}: ${answer.scores[j].toFixed(3)}`)));
  };
  const ask = async () => {
    drawMarks(st.marks, st.scale, prompt);
    say("asking SAM…");
    try {
      const [a, t] = await timedPrompt(`${base}/images/${row}/prompt`, prompt, st.mask);
      answer = a; showChoice(a.choice);
      say(`answered in ${t.total.toFixed(0)} ms (decoder ${t.decode.toFixed(0)} ms)`);
    } catch (err) { say(""); scoreLine.textContent = err.message; }
  };
  if (g.promptable) listen(st.marks, st.scale,
    (p, label) => { prompt.points.push(p); prompt.labels.push(label); ask(); },
    box => { prompt.box = box; ask(); });
  const clear = () => { prompt = {points: [], labels: [], box: null}; answer = null; st.mask.hidden = true; drawMarks(st.marks, st.scale, prompt); candidates.replaceChildren(); };
  const save = async () => {
    const res = await api(`${base}/images/${row}/save`, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({...prompt, choice})});
    saved.textContent = "saved: " + (await res.json()).files.join(", ");
  };
  const truthButton = g.task === "segmentation" ? el("button", {onclick: e => {
    st.truth.src = `${base}/images/${row}/truth.png`; st.truth.hidden = !st.truth.hidden; e.target.classList.toggle("on"); }}, "ground truth") : null;
  const n = info.rows;
  show(el("p", {}, el("a", {href: `#/g/${dataset}/${group}`}, `${dataset} / ${group}`), ` · ${info.id} · ${info.class} · ${info.width} × ${info.height}`,
         info.scene ? [" · chip of ", el("a", {href: `#/s/${dataset}/${group}/${g.scenes.indexOf(info.scene)}`}, info.scene)] : null),
    el("div", {class: "viewer"}, st.stage, el("div", {class: "panel"}, scoreLine, candidates,
      el("p", {}, el("button", {id: "clear", onclick: clear}, "clear prompt"), el("button", {onclick: () => answer && save()}, "save mask"), truthButton),
      saved,
      el("p", {}, el("a", {href: `#/search/${dataset}/${group}?positive=row:${row}`}, "most similar images"), " · ",
        el("a", {href: `#/search/${dataset}/${group}?positive=row:${row}&granularity=cell`}, "similar map cells")),
      el("p", {}, row > 0 ? el("a", {href: `#/i/${dataset}/${group}/${+row - 1}`}, "◀ previous") : null, " ",
        +row + 1 < n ? el("a", {href: `#/i/${dataset}/${group}/${+row + 1}`}, "next ▶") : null))));
}

// ---------------------------------------------------------------- a whole scene
async function sceneView(dataset, group, number) {
  const base = groupPath(dataset, group);
  const {scenes} = await getJSON(`${base}/scenes`);
  const scene = scenes[+number];
  const side = 1200;
  const st = makeStage(`${base}/scenes/${number}/image.png?side=${side}`, scene.width, scene.height, 900);
  const chips = el("canvas", {width: st.w, height: st.h, id: "chips"});
  st.stage.insertBefore(chips, st.marks);
  const drawChips = answered => {
    const ctx = chips.getContext("2d");
    ctx.clearRect(0, 0, st.w, st.h);
    for (const c of scene.chips) {
      const [x, y, w, h] = c.window;
      ctx.strokeStyle = answered.includes(c.row) ? "#e63946" : (c.usable ? "rgba(255,255,255,.6)" : "rgba(120,120,120,.6)");
      ctx.lineWidth = answered.includes(c.row) ? 2 : 1;
      ctx.strokeRect(x * st.scale + .5, y * st.scale + .5, w * st.scale - 1, h * st.scale - 1);
    }
  };
  drawChips([]);
  let prompt = {points: [], labels: [], box: null}, zoom = 1, pan = [0, 0], panning = false;
  const line = el("p", {id: "score"}, "Click: foreground point · shift-click: background · drag: box · wheel: zoom · pan mode: drag to move");
  // every layer sits in one "world" that pans and zooms; the merged mask is placed on it by its window
  const world = el("div", {id: "world"}, st.base, st.truth, st.mask, chips, st.marks);
  world.style.position = "relative"; world.style.transformOrigin = "0 0";
  st.stage.replaceChildren(world);
  const place = () => { world.style.transform = `translate(${pan[0]}px, ${pan[1]}px) scale(${zoom})`; };
  st.stage.style.width = `${st.w}px`; st.stage.style.height = `${st.h}px`;
  st.stage.addEventListener("wheel", e => {
    e.preventDefault();
    const before = zoom; zoom = Math.min(16, Math.max(1, zoom * (e.deltaY < 0 ? 1.25 : 0.8)));
    const r = st.stage.getBoundingClientRect(), mx = e.clientX - r.left, my = e.clientY - r.top;
    pan = [mx - (mx - pan[0]) * zoom / before, my - (my - pan[1]) * zoom / before]; place();
  });
  let drag = null;
  st.stage.addEventListener("mousedown", e => { if (panning) drag = [e.clientX - pan[0], e.clientY - pan[1]]; });
  st.stage.addEventListener("mousemove", e => { if (panning && drag) { pan = [e.clientX - drag[0], e.clientY - drag[1]]; place(); } });
  st.stage.addEventListener("mouseup", () => { drag = null; });
  const ask = async () => {
    drawMarks(st.marks, st.scale, prompt);
    say("asking SAM…");
    try {
      const [a, t] = await timedPrompt(`${base}/scenes/${number}/prompt`, prompt, st.mask);
      const [x, y, w, h] = a.window;
      st.mask.style.left = `${x * st.scale}px`; st.mask.style.top = `${y * st.scale}px`;
      st.mask.style.width = `${w * st.scale}px`; st.mask.style.height = `${h * st.scale}px`;
      drawChips(a.chips.map(c => c.row));
      line.textContent = `predicted IoU ${a.score.toFixed(3)} on ${a.chips[0].id}; merged over ${a.chips.length} chip(s): ${a.chips.map(c => c.id.split("#")[1]).join("; ")} · ${a.pixels} pixels`;
      say(`answered in ${t.total.toFixed(0)} ms`);
    } catch (err) { say(""); line.textContent = err.message; }
  };
  listen(st.marks, st.scale, (p, label) => { if (!panning) { prompt.points.push(p); prompt.labels.push(label); ask(); } },
    box => { if (!panning) { prompt.box = box; ask(); } });
  const panButton = el("button", {onclick: e => { panning = !panning; e.target.classList.toggle("on"); st.marks.style.pointerEvents = panning ? "none" : "auto"; }}, "pan mode");
  show(el("p", {}, el("a", {href: "#/"}, "cache"), ` · ${dataset} / ${group} · scene ${scene.name} · ${scene.width} × ${scene.height} pixels · ${scene.chips.length} chips`),
    el("div", {class: "viewer"}, st.stage, el("div", {class: "panel"}, line,
      el("p", {}, panButton, el("button", {onclick: () => { zoom = 1; pan = [0, 0]; place(); }}, "whole scene"),
        el("button", {onclick: () => { prompt = {points: [], labels: [], box: null}; st.mask.hidden = true; drawMarks(st.marks, st.scale, prompt); drawChips([]); }}, "clear prompt")))));
}

// ---------------------------------------------------------------- search
async function searchView(dataset, group, query) {
  const base = groupPath(dataset, group);
  say("searching…");
  const res = await fetch(`${base}/search?${query}`);
  if (!res.ok) { say(""); show(el("h2", {}, "Search"), el("p", {class: "error"}, (await res.text()).trim())); return; }
  const result = await res.json();
  say("");
  const heat = result.heat_map ? el("div", {}, el("h3", {}, "Similarity over the scene"), el("img", {src: result.heat_map, alt: "heat map", id: "heat"})) : null;
  show(el("h2", {}, "Search"), el("p", {class: "muted"}, result.description), heat,
    el("div", {class: "grid", id: "hits"}, result.hits.map(h => el("a", {class: "tile", href: `#/i/${dataset}/${group}/${h.row}`, title: h.id},
      el("img", {src: `${base}/images/${h.row}/image.png?side=128`, loading: "lazy", alt: h.id}),
      el("div", {class: "label"}, `${h.rank}. ${h.id}`),
      el("div", {class: "muted"}, `score ${(+h.score).toFixed(3)}${h.label ? " · " + h.label : ""}${h.cell_y !== undefined ? ` · cell ${h.cell_y},${h.cell_x}` : ""}`)))));
}

// ---------------------------------------------------------------- results
function tableOf(rows, columns) {
  return el("table", {}, el("tr", {}, columns.map(c => el("th", {}, c))),
    rows.map(r => el("tr", {}, columns.map(c => el("td", {}, typeof r[c] === "number" ? +r[c].toFixed(4) : (r[c] ?? ""))))));
}

async function resultsView() {
  say("reading the runs store…");
  const results = await getJSON("/api/results");
  say("");
  const parts = [el("h2", {}, "Results"), el("p", {class: "muted"}, `${results.runs} runs in ${results.runs_store}`)];
  if (results.classification) {
    parts.push(el("h3", {}, "Classification: summary"), tableOf(results.classification.summary,
      ["dataset", "encoder", "head", "feature", "split", "n_seeds", "accuracy_mean", "accuracy_std", "macro_f1_mean"]));
    parts.push(el("h3", {}, "Confusion matrices (click a cell: its images)"));
    const cellImages = el("div", {id: "cell-images"});
    for (const c of results.confusion) {
      const matrix = el("table", {class: "confusion", "data-run": c.run_id},
        el("tr", {}, el("th", {}, "true \\ predicted"), c.classes.map(n => el("th", {}, n))),
        c.matrix.map((row, i) => el("tr", {}, el("th", {}, c.classes[i]), row.map((count, j) =>
          el("td", {class: `cell${i === j ? " diag" : ""}`, "data-true": i, "data-predicted": j,
                    onclick: () => openCell(c, i, j, cellImages)}, count)))));
      parts.push(el("div", {}, el("p", {}, el("strong", {}, `${c.head} on ${c.group}`), ` · split ${c.split} · seed ${c.seed} · run ${c.run_id}`), matrix));
    }
    parts.push(cellImages);
  }
  if (results.segmentation) {
    parts.push(el("h3", {}, "Segmentation: summary"), tableOf(results.segmentation.summary,
      ["dataset", "model", "split", "n_seeds", "micro_dice_mean", "micro_iou_mean", "mean_dice_mean"]));
    parts.push(el("div", {id: "side-by-side"}, el("button", {onclick: e => sideBySide(e.target.parentNode)}, "show images, truth and predictions side by side")));
  }
  const figures = el("div", {class: "figures", id: "figures"});
  parts.push(el("h3", {}, "Report"), el("button", {id: "write-report", onclick: () => writeReport(figures)}, "write the report and show its figures"), figures);
  show(...parts);
}

async function openCell(run, i, j, target) {
  say("finding the images…");
  try {
    const cell = await getJSON(`/api/results/runs/${encodeURIComponent(run.run_id)}/confusion?true=${i}&predicted=${j}`);
    say("");
    const [dataset, group] = cell.group.split("/");
    const base = groupPath(dataset, group);
    target.replaceChildren(el("h3", {}, `${cell.images.length} image(s): true ${cell.true}, predicted ${cell.predicted} (${run.head})`),
      el("div", {class: "grid"}, cell.images.map(im => el("a", {class: "tile", href: `#/i/${dataset}/${group}/${im.row}`, title: im.id},
        el("img", {src: `${base}/images/${im.row}/image.png?side=128`, loading: "lazy", alt: im.id}), el("div", {class: "label"}, im.id)))));
    target.scrollIntoView();
  } catch (err) { say(""); target.replaceChildren(el("p", {class: "error"}, err.message)); }
}

async function sideBySide(target) {
  const {models} = await getJSON("/api/results/segmentation");
  const first = models.find(m => m.group);
  if (!first) { target.replaceChildren(el("p", {class: "error"}, "the runs' cache groups are not in the cache served")); return; }
  const [dataset, group] = first.group.split("/");
  const base = groupPath(dataset, group);
  const rows = [];
  for (const [k, id] of first.images.slice(0, 6).entries()) {
    const info = await getJSON(`${base}/lookup?id=${encodeURIComponent(id)}`);
    const figure = (caption, over) => el("figure", {}, el("img", {src: `${base}/images/${info.row}/image.png`, alt: id}),
      over ? el("img", {class: "over", src: over, alt: ""}) : null, el("figcaption", {}, caption));
    rows.push(el("div", {class: "side"}, figure(`${id}`), figure("ground truth", `${base}/images/${info.row}/truth.png`),
      models.map(m => { const at = m.images.indexOf(id); return at < 0 ? null : figure(m.model, `/api/results/runs/${encodeURIComponent(m.run_id)}/predictions/${at}.png`); })));
  }
  target.replaceChildren(...rows);
}

async function writeReport(target) {
  say("writing the report…");
  const report = await (await api("/api/results/report", {method: "POST"})).json();
  say(`report written into ${report.folder}`);
  target.replaceChildren(...report.figures.map(name => el("img", {src: `/api/results/figures/${encodeURIComponent(name)}`, alt: name, title: name})));
}

route();
