// The labelling pane: an anywidget view of `LabelPane` (src/armillary/widget.py).
// It shows one source, sends acts to the kernel and marks each act saved only once the
// kernel has acknowledged its commit (`acked`); until then the act shows as pending and
// is re-sent.
import type { AnyModel, RenderProps } from "@anywidget/types";
import "./widget.css";
import type { Act, Candidate, DensityMap, NackMessage, PaneModel } from "./types";

type Model = AnyModel<PaneModel>;
type ActState = "pending" | "saved" | "failed";

interface Entry {
  act: Act;
  state: ActState;
  error?: string;
  timer?: ReturnType<typeof setTimeout>;
}

const RESEND_MS = 2500;
const LOG_LENGTH = 6;

function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  cls = "",
  text = "",
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (cls) el.className = cls;
  if (text) el.textContent = text;
  return el;
}

function newClientId(): string {
  const c = globalThis.crypto;
  return c && "randomUUID" in c ? c.randomUUID() : `c${Date.now()}${Math.random()}`;
}

function describe(act: Act): string {
  const what = act.action === "label" ? act.label ?? "" : act.action;
  if (act.action === "undo") return act.id === null ? "undo" : `undo · ${act.id}`;
  return `${what} · ${act.id ?? ""}`;
}

/** Everything the view draws, kept so that updates touch only what changed. */
interface Parts {
  root: HTMLDivElement;
  title: HTMLSpanElement;
  counts: HTMLSpanElement;
  id: HTMLDivElement;
  meta: HTMLDivElement;
  image: HTMLDivElement;
  values: HTMLTableElement;
  cutouts: HTMLDivElement;
  maps: HTMLDivElement;
  buttons: HTMLDivElement;
  log: HTMLOListElement;
  status: HTMLDivElement;
  error: HTMLDivElement;
}

function build(): Parts {
  const root = h("div", "armillary-pane");
  root.tabIndex = 0;
  const header = h("div", "arm-header");
  const title = h("span", "arm-title");
  const counts = h("span", "arm-counts");
  header.append(title, counts);
  const card = h("div", "arm-card");
  const id = h("div", "arm-id");
  const meta = h("div", "arm-meta");
  const body = h("div", "arm-body");
  const image = h("div", "arm-image");
  const values = h("table", "arm-values");
  body.append(image, values);
  const cutouts = h("div", "arm-cutouts");
  const maps = h("div", "arm-maps");
  card.append(id, meta, body, cutouts, maps);
  const buttons = h("div", "arm-buttons");
  const logTitle = h("div", "arm-section", "Recent");
  const log = h("ol", "arm-log");
  const status = h("div", "arm-status");
  const error = h("div", "arm-error");
  error.setAttribute("role", "alert");
  root.append(header, card, buttons, error, logTitle, log, status);
  return { root, title, counts, id, meta, image, values, cutouts, maps, buttons, log, status, error };
}

function drawValues(table: HTMLTableElement, cand: Candidate): void {
  table.replaceChildren();
  for (const v of cand.values ?? []) {
    const tr = h("tr");
    const td = h("td", "arm-value");
    if (v.value === null) {
      td.textContent = "—";
      td.classList.add("arm-missing");
      td.title = "missing in the catalogue";
    } else {
      td.textContent = v.value;
    }
    tr.append(h("th", "", v.name), td);
    table.append(tr);
  }
}

function drawCutouts(box: HTMLDivElement, cand: Candidate): void {
  const shown = cand.cutouts ?? [];
  // The same URLs as on show (a redraw of the same source): keep the loaded images.
  const key = JSON.stringify(shown);
  if (box.dataset.key === key) return;
  box.dataset.key = key;
  box.replaceChildren();
  for (const c of shown) {
    const fig = h("figure", "arm-cutout");
    const frame = h("div", "arm-cutout-frame");
    const unavailable = (text: string, why: string) => {
      const span = h("span", "arm-noimage", text);
      span.title = why;
      frame.replaceChildren(span);
      fig.classList.add("arm-cutout-none");
    };
    if (c.url === null) {
      unavailable("missing value", "a column this cutout's URL needs has no value for this source");
    } else {
      const link = h("a");
      link.href = c.url;
      link.target = "_blank";
      link.rel = "noopener noreferrer";
      link.title = `${c.name}: open the image in a new tab`;
      const img = h("img");
      img.loading = "eager";
      img.referrerPolicy = "no-referrer";
      img.alt = `${c.name} cutout of ${cand.id ?? ""}`;
      img.addEventListener("error", () =>
        unavailable("not available", `${c.url} could not be loaded (offline, or outside the survey)`),
      );
      img.src = c.url;
      link.append(img);
      frame.append(link);
    }
    fig.append(frame, h("figcaption", "", c.name));
    box.append(fig);
  }
}

const MAP_PX = 132;

/** The bytes of a binary buffer, copied into a fresh (aligned) ArrayBuffer. */
function copyOf(view: DataView): ArrayBuffer {
  return view.buffer.slice(view.byteOffset, view.byteOffset + view.byteLength) as ArrayBuffer;
}

/** One density map: the catalogue's counts, the candidate's place on them, the axes. */
class MapView {
  readonly el: HTMLElement;
  private readonly canvas: HTMLCanvasElement;
  private readonly note: HTMLElement;
  private readonly image = new Image();
  private readonly url: string;
  private at: [number | null, number | null] | null = null;
  private points: { xy: Float32Array; codes: Uint8Array; colours: string[] } | null = null;

  constructor(private readonly spec: DensityMap) {
    this.el = h("figure", "arm-map");
    this.canvas = h("canvas", "arm-map-canvas");
    const ratio = Math.ceil(globalThis.devicePixelRatio || 1);
    this.canvas.width = this.canvas.height = MAP_PX * ratio;
    this.canvas.style.width = this.canvas.style.height = `${MAP_PX}px`;
    this.url = URL.createObjectURL(new Blob([copyOf(spec.png)], { type: "image/png" }));
    this.image.onload = () => this.draw();
    this.image.src = this.url;
    const [[x0, x1], [y0, y1]] = spec.limits;
    const fmt = (v: number) => Number(v.toPrecision(3)).toString();
    const yLabel = h("div", "arm-map-y", spec.y);
    yLabel.title = `${spec.y}: ${fmt(y0)} to ${fmt(y1)}`;
    const xLabel = h("figcaption", "arm-map-x", spec.x);
    xLabel.title = `${spec.x}: ${fmt(x0)} to ${fmt(x1)}`;
    this.note = h("div", "arm-map-note");
    const plot = h("div", "arm-map-plot");
    plot.append(yLabel, this.canvas);
    this.el.append(plot, xLabel, this.note);
    this.el.title = `where this source sits among all rows: ${spec.y} against ${spec.x}`;
    this.canvas.setAttribute("role", "img");
    this.canvas.setAttribute("aria-label", this.el.title);
  }

  show(at: [number | null, number | null] | null): void {
    this.at = at;
    this.draw();
  }

  /** The labelled sources, as dots in their class colours. */
  label(xy: Float32Array | null, codes: Uint8Array | null, colours: string[]): void {
    this.points = xy && codes ? { xy, codes, colours } : null;
    this.draw();
  }

  private drawPoints(ctx: CanvasRenderingContext2D, size: number): void {
    if (!this.points) return;
    const { xy, codes, colours } = this.points;
    const [[x0, x1], [y0, y1]] = this.spec.limits;
    const r = Math.max(2.5, size / 48);
    ctx.lineWidth = Math.max(1, size / 200);
    ctx.strokeStyle = "rgba(0, 0, 0, 0.75)";
    for (let i = 0; i < codes.length; i++) {
      const fx = (xy[2 * i] - x0) / (x1 - x0);
      const fy = (xy[2 * i + 1] - y0) / (y1 - y0);
      if (!(fx >= 0 && fx <= 1 && fy >= 0 && fy <= 1)) continue; // off the map, or NaN
      ctx.fillStyle = colours[codes[i]] ?? "#888";
      ctx.beginPath();
      ctx.arc(fx * size, (1 - fy) * size, r, 0, 2 * Math.PI);
      ctx.fill();
      ctx.stroke();
    }
  }

  private draw(): void {
    const ctx = this.canvas.getContext("2d");
    if (!ctx) return;
    const size = this.canvas.width;
    ctx.imageSmoothingEnabled = false;
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, size, size);
    if (this.image.complete && this.image.naturalWidth) ctx.drawImage(this.image, 0, 0, size, size);
    this.drawPoints(ctx, size);
    const at = this.at;
    this.note.textContent = "";
    this.el.dataset.marker = "none";
    if (!at) return;
    if (at[0] === null || at[1] === null) {
      this.note.textContent = "no value here";
      return;
    }
    const [[x0, x1], [y0, y1]] = this.spec.limits;
    const fx = (at[0] - x0) / (x1 - x0);
    const fy = (at[1] - y0) / (y1 - y0);
    const inside = fx >= 0 && fx <= 1 && fy >= 0 && fy <= 1;
    const clamp = (f: number) => Math.min(1, Math.max(0, f));
    const px = clamp(fx) * size;
    const py = (1 - clamp(fy)) * size;
    const r = size * 0.05;
    // A white halo under a blue ring: visible on dense and empty parts alike, and unlike
    // any class colour.
    ctx.lineWidth = Math.max(4, size / 34);
    ctx.strokeStyle = "rgba(255, 255, 255, 0.85)";
    ctx.beginPath();
    ctx.arc(px, py, r, 0, 2 * Math.PI);
    ctx.stroke();
    ctx.lineWidth = Math.max(2, size / 70);
    ctx.strokeStyle = "#1a56db";
    ctx.beginPath();
    ctx.arc(px, py, r, 0, 2 * Math.PI);
    ctx.stroke();
    if (inside) {
      ctx.beginPath();
      ctx.moveTo(px - 2.2 * r, py);
      ctx.lineTo(px - 1.2 * r, py);
      ctx.moveTo(px + 1.2 * r, py);
      ctx.lineTo(px + 2.2 * r, py);
      ctx.moveTo(px, py - 2.2 * r);
      ctx.lineTo(px, py - 1.2 * r);
      ctx.moveTo(px, py + 1.2 * r);
      ctx.lineTo(px, py + 2.2 * r);
      ctx.stroke();
    } else {
      this.note.textContent = "off the map (marked at its edge)";
    }
    this.el.dataset.marker = inside ? "inside" : "edge";
  }

  dispose(): void {
    URL.revokeObjectURL(this.url);
  }
}

function drawCounts(el: HTMLElement, model: Model): void {
  const c = model.get("counts") ?? {};
  const pool = c.pool ?? 0;
  el.textContent =
    `${c.labelled ?? 0} labelled · ${c.unsure ?? 0} unsure · ` +
    `${c.skipped ?? 0} skipped of ${pool.toLocaleString("en")}`;
}

function drawLog(el: HTMLOListElement, entries: Entry[], model: Model, client: string): void {
  el.replaceChildren();
  const shown = entries.slice(-LOG_LENGTH).reverse();
  const others = (model.get("recent") ?? []).filter((a) => a.client !== client);
  for (const e of shown) {
    const li = h("li", `arm-act arm-${e.state}`);
    const badge = { pending: "pending", saved: "saved", failed: "not saved" }[e.state];
    li.append(h("span", "arm-badge", badge), h("span", "", describe(e.act)));
    if (e.error) li.title = e.error;
    el.append(li);
  }
  for (const a of others.slice(0, Math.max(0, LOG_LENGTH - shown.length))) {
    const li = h("li", "arm-act arm-saved");
    li.append(h("span", "arm-badge", "saved"), h("span", "", describe(a)));
    el.append(li);
  }
}

function render({ model, el }: RenderProps<PaneModel>): () => void {
  const client = newClientId();
  const parts = build();
  const entries: Entry[] = [];
  let seq = 0;
  let actedOn: string | number | null | undefined = undefined;
  let imageUrl: string | null = null;
  let mapViews: MapView[] = [];
  el.append(parts.root);

  const redrawLog = () => drawLog(parts.log, entries, model, client);

  function send(entry: Entry): void {
    model.send({ type: "act", ...entry.act });
    entry.timer = setTimeout(() => {
      if (entry.state === "pending") send(entry);
    }, RESEND_MS);
  }

  function act(action: Act["action"], label: string | null = null): void {
    const cand = model.get("candidate") ?? {};
    const id = action === "undo" ? null : cand.id ?? null;
    if (action !== "undo" && (id === null || actedOn === id)) return;
    seq = Math.max(seq, model.get("acked")?.[client] ?? 0) + 1;
    const entry: Entry = { act: { client, seq, action, id, label }, state: "pending" };
    if (action !== "undo") actedOn = id;
    entries.push(entry);
    parts.root.classList.add("arm-waiting");
    send(entry);
    redrawLog();
  }

  function onAcked(): void {
    const upto = model.get("acked")?.[client] ?? 0;
    for (const e of entries) {
      if (e.state === "pending" && e.act.seq <= upto) {
        e.state = "saved";
        clearTimeout(e.timer);
      }
    }
    redrawLog();
  }

  function onMessage(msg: NackMessage): void {
    if (msg?.type !== "nack" || msg.client !== client) return;
    const e = entries.find((x) => x.act.seq === msg.seq);
    if (!e) return;
    e.state = "failed";
    e.error = msg.error;
    clearTimeout(e.timer);
    actedOn = undefined;
    parts.root.classList.remove("arm-waiting");
    redrawLog();
  }

  function drawButtons(): void {
    parts.buttons.replaceChildren();
    const add = (text: string, key: string, cls: string, fn: () => void, colour = "") => {
      const b = h("button", `arm-button ${cls}`);
      b.append(h("span", "arm-key", key), h("span", "", text));
      b.title = `${text} (key ${key})`;
      if (colour) b.style.setProperty("--arm-colour", colour);
      b.addEventListener("click", () => {
        fn();
        parts.root.focus();
      });
      parts.buttons.append(b);
    };
    for (const c of model.get("classes") ?? []) {
      add(c.name, c.key, "arm-class", () => act("label", c.name), c.colour);
    }
    add("Unsure", "u", "arm-other", () => act("unsure"));
    add("Skip", "s", "arm-other", () => act("skip"));
    add("Undo", "z", "arm-other", () => act("undo"));
  }

  function drawCandidate(): void {
    const cand = model.get("candidate") ?? {};
    actedOn = undefined;
    parts.root.classList.remove("arm-waiting");
    const empty = cand.id === undefined || cand.id === null;
    parts.root.classList.toggle("arm-empty", empty);
    parts.image.hidden = cand.has_images === false;
    parts.id.textContent = empty ? "Nothing left to label in this pool" : String(cand.id);
    parts.root.dataset.candidate = empty ? "" : String(cand.id);
    const score = typeof cand.score === "number" ? `score ${cand.score.toFixed(3)}` : "";
    const version = cand.model_version
      ? `model v${cand.model_version}`
      : "picked before any model, for variety";
    parts.meta.textContent = empty ? "" : [score, version].filter(Boolean).join(" · ");
    drawValues(parts.values, cand);
    drawCutouts(parts.cutouts, cand);
    const at = cand.map_positions ?? [];
    mapViews.forEach((view, i) => view.show(empty ? null : at[i] ?? null));
  }

  function drawMaps(): void {
    for (const view of mapViews) view.dispose();
    mapViews = (model.get("maps") ?? []).map((spec) => new MapView(spec));
    parts.maps.replaceChildren(...mapViews.map((v) => v.el));
    drawMapLabels();
    drawCandidate();
  }

  function drawMapLabels(): void {
    const given = model.get("map_labels") ?? {};
    const codes = given.codes ? new Uint8Array(copyOf(given.codes)) : null;
    const colours = (model.get("classes") ?? []).map((c) => c.colour);
    mapViews.forEach((view, i) => {
      const xy = given.xy?.[i];
      view.label(xy ? new Float32Array(copyOf(xy)) : null, codes, colours);
    });
  }

  function drawImage(): void {
    if (imageUrl) URL.revokeObjectURL(imageUrl);
    imageUrl = null;
    parts.image.replaceChildren();
    const data = model.get("image");
    if (data && data.byteLength > 0) {
      const bytes = new Uint8Array(data.byteLength);
      bytes.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      imageUrl = URL.createObjectURL(new Blob([bytes], { type: "image/png" }));
      const img = h("img");
      img.src = imageUrl;
      img.alt = model.get("candidate")?.image_name ?? "image";
      parts.image.append(img);
    } else {
      parts.image.append(h("span", "arm-noimage", "no image"));
    }
  }

  const keys: Record<string, () => void> = { u: () => act("unsure"), s: () => act("skip"), z: () => act("undo") };
  function onKey(e: KeyboardEvent): void {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const classes = model.get("classes") ?? [];
    const cls = classes.find((c) => c.key === e.key);
    const fn = cls ? () => act("label", cls.name) : keys[e.key.toLowerCase()];
    if (!fn) return;
    e.preventDefault();
    e.stopPropagation();
    fn();
  }

  const simple: Array<[string, () => void]> = [
    ["change:title", () => (parts.title.textContent = model.get("title"))],
    ["change:counts", () => drawCounts(parts.counts, model)],
    ["change:status", () => (parts.status.textContent = model.get("status"))],
    ["change:error", () => (parts.error.textContent = model.get("error"))],
    ["change:classes", drawButtons],
    ["change:maps", drawMaps],
    ["change:map_labels", drawMapLabels],
    ["change:candidate", drawCandidate],
    ["change:image", drawImage],
    ["change:acked", onAcked],
    ["change:recent", redrawLog],
  ];
  for (const [name, fn] of simple) {
    model.on(name, fn);
    fn();
  }
  model.on("msg:custom", onMessage);
  parts.root.addEventListener("keydown", onKey);
  parts.root.addEventListener("click", () => parts.root.focus());

  return () => {
    for (const [name, fn] of simple) model.off(name, fn);
    model.off("msg:custom", onMessage);
    for (const e of entries) clearTimeout(e.timer);
    if (imageUrl) URL.revokeObjectURL(imageUrl);
    for (const view of mapViews) view.dispose();
  };
}

export default { render };
