// The JupyterLab extension: registers the `DockModel` widget model (the JS side of
// `Dock` in src/armillary/widget.py). While a Dock's `docked` trait is true its child
// pane is shown as a tab in JupyterLab's side panel; closing the tab sets `docked` false.
import type { JupyterFrontEnd, JupyterFrontEndPlugin } from "@jupyterlab/application";
import {
  IJupyterWidgetRegistry,
  WidgetModel,
  unpack_models,
  type DOMWidgetView,
} from "@jupyter-widgets/base";
import { Panel, Widget } from "@lumino/widgets";
import pkg from "../package.json";

const MODULE = "armillary";
const VERSION: string = pkg.version;

type Area = "left" | "right" | "main";

function titleBar(title: string, onClose: () => void): Widget {
  const node = document.createElement("div");
  node.className = "armillary-dock-bar";
  const label = document.createElement("span");
  label.className = "armillary-dock-title";
  label.textContent = title;
  const close = document.createElement("button");
  close.className = "armillary-dock-close";
  close.textContent = "Undock ×";
  close.title = "Close this panel (session.dock() opens it again)";
  close.addEventListener("click", onClose);
  node.append(label, close);
  return new Widget({ node });
}

const MIN_WIDTH = 360;

/**
 * Give the side panel room for the pane the first time it opens narrower than
 * MIN_WIDTH. JupyterLab has no public API for a side panel's width; this uses the
 * shell's split panel where it is found and does nothing otherwise (the user can
 * still drag the divider).
 */
function widenSidePanel(app: JupyterFrontEnd, panel: Panel): void {
  const split = (app.shell as any)?._hsplitPanel;
  const width = panel.node.getBoundingClientRect().width;
  if (!split || width <= 0 || width >= MIN_WIDTH) return;
  try {
    const sizes: number[] = split.relativeSizes();
    const total = split.node.getBoundingClientRect().width;
    if (sizes.length !== 3 || total <= 3 * MIN_WIDTH) return;
    const right = MIN_WIDTH / total;
    const grow = right - sizes[2];
    split.setRelativeSizes([sizes[0], Math.max(0.2, sizes[1] - grow), right]);
  } catch {
    // Layout internals changed: leave the width to the user.
  }
}

function dockModelClass(app: JupyterFrontEnd) {
  return class DockModel extends WidgetModel {
    static serializers = { ...WidgetModel.serializers, child: { deserialize: unpack_models } };

    private panel: Panel | null = null;
    private opening: Promise<void> | null = null;

    defaults() {
      return {
        ...super.defaults(),
        _model_name: "DockModel",
        _model_module: MODULE,
        _model_module_version: VERSION,
        child: null,
        title: "Armillary",
        area: "right",
        docked: true,
      };
    }

    initialize(attributes: any, options: any): void {
      super.initialize(attributes, options);
      this.on("change:docked", () => void this.syncDock());
      this.on("change:title", () => this.retitle());
      this.on("destroy", () => this.closePanel());
      // `session.dock()` on a pane that is already docked asks for it to be shown again.
      this.on("msg:custom", (msg: { type?: string }) => {
        if (msg?.type === "open") void this.syncDock();
      });
      void this.syncDock();
    }

    private async syncDock(): Promise<void> {
      if (!this.get("docked")) {
        this.closePanel();
      } else if (this.panel && !this.panel.isDisposed) {
        app.shell.activateById(this.panel.id);
      } else {
        this.opening ??= this.openPanel().finally(() => (this.opening = null));
        await this.opening;
      }
    }

    private async openPanel(): Promise<void> {
      const child = this.get("child") as WidgetModel | null;
      if (!child) return;
      const view = (await this.widget_manager.create_view(child, {})) as DOMWidgetView;
      const panel = new Panel();
      panel.id = `armillary-dock-${this.model_id}`;
      panel.addClass("armillary-dock");
      panel.title.label = this.get("title");
      panel.title.caption = `Armillary: ${this.get("title")}`;
      panel.title.closable = true;
      panel.addWidget(titleBar("Armillary", () => panel.dispose()));
      panel.addWidget(view.luminoWidget);
      panel.disposed.connect(() => this.panelClosed(panel));
      this.panel = panel;
      app.shell.add(panel, this.get("area") as Area, { rank: 900 });
      app.shell.activateById(panel.id);
      requestAnimationFrame(() => widenSidePanel(app, panel));
    }

    private retitle(): void {
      if (!this.panel) return;
      this.panel.title.label = this.get("title");
    }

    private closePanel(): void {
      const panel = this.panel;
      this.panel = null;
      if (panel && !panel.isDisposed) panel.dispose();
    }

    private panelClosed(panel: Panel): void {
      if (this.panel === panel) this.panel = null;
      if (this.get("docked") && !this.panel) {
        this.set("docked", false);
        this.save_changes();
      }
    }
  };
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: "armillary:dock",
  description: "Docks Armillary's labelling pane in JupyterLab's side panel.",
  autoStart: true,
  requires: [IJupyterWidgetRegistry],
  activate: (app: JupyterFrontEnd, registry: IJupyterWidgetRegistry) => {
    registry.registerWidget({
      name: MODULE,
      version: VERSION,
      exports: { DockModel: dockModelClass(app) },
    });
  },
};

export default plugin;
