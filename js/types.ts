// Typed mirror of the traits of `LabelPane` in src/armillary/widget.py.
// Keep the two in step: a trait added there is added here.

export interface ClassButton {
  name: string;
  colour: string;
  key: string;
}

export interface ShownValue {
  name: string;
  /** Formatted value; null when the catalogue has no value (NaN, masked, empty). */
  value: string | null;
}

export interface Candidate {
  id?: string | number;
  score?: number | null;
  model_version?: number;
  values?: ShownValue[];
  /** Survey cutouts: the browser loads each URL; null when the source lacks a value. */
  cutouts?: Cutout[];
  image_name?: string | null;
  /** False when the session has no image columns: the pane then shows no image frame. */
  has_images?: boolean;
  /** The candidate's (x, y) on each of `maps`; null where it has no value. */
  map_positions?: Array<[number | null, number | null]>;
}

/** A density map of the whole catalogue: log counts as a PNG (y up) over `limits`. */
export interface DensityMap {
  x: string;
  y: string;
  limits: [[number, number], [number, number]];
  png: DataView;
}

export interface Cutout {
  name: string;
  url: string | null;
}

export interface Act {
  client: string;
  seq: number;
  action: "label" | "unsure" | "skip" | "undo";
  id: string | number | null;
  label: string | null;
}

export interface Counts {
  labelled?: number;
  unsure?: number;
  skipped?: number;
  pool?: number;
}

export interface PaneModel {
  title: string;
  classes: ClassButton[];
  candidate: Candidate;
  image: DataView | null;
  maps: DensityMap[];
  /** Human labels on the maps: class index per label, and float32 (x, y) pairs per map. */
  map_labels: { codes?: DataView; xy?: DataView[] };
  acked: Record<string, number>;
  recent: Act[];
  status: string;
  counts: Counts;
  error: string;
}

/** Messages the view sends to the kernel. */
export interface ActMessage extends Act {
  type: "act";
}

/** Messages the kernel sends to the view. */
export interface NackMessage {
  type: "nack";
  client: string;
  seq: number;
  error: string;
}
