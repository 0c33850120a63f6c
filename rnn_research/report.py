"""Results -> markdown tables and PNG figures; several workdirs -> one page.

The gradient studies keep everything a figure needs in ``results.json`` (the
clipping surface in ``surface.npz`` beside it), so figures and tables are
functions of a workdir's files and can be redrawn without rerunning:
``draw_figures(results, workdir)`` and ``results_markdown(results)``.

``collect(workdirs)`` turns any mix of workdirs (gradient studies, language
models, agreement) into one markdown page: a summary table with each run's
headline numbers, then each run's results.md and figures.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
from typing import Any, Callable

import numpy as np

from rnn_research import metrics as metrics_lib


def _pyplot():
  """matplotlib's pyplot on the file-only backend (no display on these machines)."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def _fmt(value: Any, digits: int = 3) -> str:
  if value is None or (isinstance(value, float) and not math.isfinite(value)):
    return "-"
  if isinstance(value, float):
    return f"{value:.{digits}g}"
  return str(value)


def _array(values) -> np.ndarray:
  """A results.json list back to floats (metrics writes NaN as the string 'nan')."""
  return np.array([float(v) if v is not None else np.nan for v in values], np.float64)


# ---------------------------------------------------------------------------
# Figures, one function per variant: (results, workdir) -> file name.


def plot_spectral(results: dict, workdir: pathlib.Path) -> str:
  plt = _pyplot()
  activations = list(dict.fromkeys(c["activation"] for c in results["curves"]))
  distance = np.asarray(results["distance"])
  fig, axes = plt.subplots(2, len(activations), figsize=(5.5 * len(activations), 8),
                           squeeze=False)
  colors = plt.cm.viridis(np.linspace(0, 0.9, len(results["slopes"]) // len(activations)))
  for col, activation in enumerate(activations):
    curves = [c for c in results["curves"] if c["activation"] == activation]
    for color, c in zip(colors, curves):
      label = f"rho = {c['rho']:g}"
      axes[0, col].semilogy(distance, _array(c["mean_norm"]), color=color, label=label)
      axes[1, col].plot(distance, _array(c["mean_log_gain"]), color=color, label=label)
      axes[1, col].plot(distance, distance * math.log(c["rho"]), color=color, ls="--",
                        lw=0.8)
    axes[0, col].set_title(f"Elman, {activation}: mean ||dJ(i)/dh(i-l)||")
    axes[1, col].set_title(f"{activation}: log gain (solid) vs l log(rho) (dashed)")
    axes[1, col].set_xlabel("distance l = i - j (steps)")
    axes[0, col].set_ylabel("gradient norm")
    axes[1, col].set_ylabel("mean log(||dJ(i)/dh(i-l)|| / ||dJ(i)/dh(i)||)")
    # Theory lines can run far past the measured ones (tanh saturates): keep
    # the measured curves in view, the theory lines up to the same range.
    gains = np.concatenate([_array(c["mean_log_gain"]) for c in curves])
    lo, hi = min(np.nanmin(gains), 0.0), max(np.nanmax(gains), 0.0)
    theory_hi = max(distance[-1] * math.log(c["rho"]) for c in curves)
    axes[1, col].set_ylim(lo - 1, max(hi, min(theory_hi, hi + (hi - lo))) + 1)
    for ax in axes[:, col]:
      ax.grid(alpha=0.3)
      ax.legend(fontsize=8)
  fig.tight_layout()
  name = "spectral.png"
  fig.savefig(workdir / name, dpi=80)
  plt.close(fig)
  return name


def plot_cells(results: dict, workdir: pathlib.Path) -> str:
  plt = _pyplot()
  stages = list(dict.fromkeys(c["stage"] for c in results["curves"]))
  distance = np.asarray(results["distance"])
  fig, axes = plt.subplots(1, len(stages), figsize=(5.5 * len(stages), 4), squeeze=False)
  for ax, stage in zip(axes[0], stages):
    for c in results["curves"]:
      if c["stage"] == stage:
        ax.semilogy(distance, _array(c["mean_norm"]), label=c["cell"])
    ax.axvline(results["reference_distance"], color="gray", ls=":", lw=1)
    title = "at initialisation" if stage == "init" else f"after {results['train_steps']} steps"
    ax.set_title(f"mean ||dJ(i)/dh(i-l)||, {title}")
    ax.set_xlabel("distance l = i - j (steps)")
    ax.grid(alpha=0.3)
    ax.legend()
  fig.tight_layout()
  name = "cells.png"
  fig.savefig(workdir / name, dpi=80)
  plt.close(fig)
  return name


def plot_long_range(results: dict, workdir: pathlib.Path) -> str:
  """Per task (one row each): error against T beside the baseline, the
  gradient share reaching the first step, learning curves at the largest T."""
  plt = _pyplot()
  tasks = results["tasks"]
  fig, axes = plt.subplots(len(tasks), 3, figsize=(16, 4 * len(tasks)), squeeze=False)
  for row_axes, task in zip(axes, tasks):
    rows = [r for r in results["rows"] if r["task"] == task]
    lengths = results["lengths"][task]
    longest = max(lengths)
    for model in results["models"][task]:
      mine = sorted((r for r in rows if r["model"] == model), key=lambda r: r["T"])
      ts = [r["T"] for r in mine]
      line, = row_axes[0].semilogy(ts, [r["error"] or np.nan for r in mine], "o-", label=model)
      color = line.get_color()
      row_axes[1].semilogy(ts, [r["grad_share_init"] or np.nan for r in mine], "o-",
                           color=color, label=f"{model}, init")
      row_axes[1].semilogy(ts, [r["grad_share_final"] or np.nan for r in mine], "x--",
                           color=color, label=f"{model}, trained")
      for r in mine:
        if r["T"] == longest:
          row_axes[2].semilogy(r["curve"]["step"], _array(r["curve"]["loss"]), color=color,
                               label=model)
    base = sorted({(r["T"], r["baseline"]) for r in rows})
    row_axes[0].semilogy([b[0] for b in base], [b[1] for b in base], "k:_", ms=12,
                         label="baseline")
    if max(lengths) >= 5 * min(lengths):
      row_axes[0].set_xscale("log")
      row_axes[1].set_xscale("log")
    row_axes[2].axhline(next(r["baseline"] for r in rows if r["T"] == longest), color="k",
                        ls=":", label="baseline")
    row_axes[0].set_title(f"{task}: held-out error after {results['train_steps'][task]} steps")
    row_axes[0].set_xlabel("T")
    row_axes[1].set_title(f"{task}: ||dJ/dh_1|| / ||dJ/dh_T||")
    row_axes[1].set_xlabel("T")
    row_axes[2].set_title(f"{task}: training loss at T = {longest} (mean of seeds)")
    row_axes[2].set_xlabel("step")
    for ax in row_axes:
      ax.grid(alpha=0.3)
      ax.legend(fontsize=7)
  fig.tight_layout()
  name = "long_range.png"
  fig.savefig(workdir / name, dpi=70)
  plt.close(fig)
  return name


def plot_clipping(results: dict, workdir: pathlib.Path) -> str:
  plt = _pyplot()
  surface = np.load(workdir / results["surface_file"])
  fig, axes = plt.subplots(1, 2, figsize=(12, 5))
  ax = axes[0]
  contour = ax.contourf(surface["w"], surface["b"], np.log10(surface["loss"] + 1e-6),
                        levels=30, cmap="viridis")
  fig.colorbar(contour, ax=ax, label="log10 loss")
  for r in results["runs"]:
    points = np.asarray(r["trajectory"])
    style = dict(color="white", label="clipped") if r["clip_norm"] else dict(
        color="red", label="not clipped")
    ax.plot(points[:, 0], points[:, 1], ".-", ms=3, lw=0.8, **style)
    ax.plot(*points[0], "ko", ms=4)
  handles, labels = ax.get_legend_handles_labels()
  unique = dict(zip(labels, handles))
  ax.legend(unique.values(), unique.keys(), loc="upper right")
  ax.set_xlim(surface["w"][0], surface["w"][-1])
  ax.set_ylim(surface["b"][0], surface["b"][-1])
  ax.set_xlabel("w")
  ax.set_ylabel("b")
  ax.set_title(f"h_t = sigmoid(w h_(t-1) + b): loss surface and SGD (lr {results['learning_rate']:g})")
  for r in results["runs"]:
    axes[1].semilogy(r["grad_norms"], color="white" if r["clip_norm"] else "red",
                     alpha=0.8, lw=1)
  axes[1].set_facecolor("#888888")
  axes[1].axhline(results["clip_norm"], color="black", ls=":", label="clip_norm")
  axes[1].set_xlabel("SGD step")
  axes[1].set_title("gradient norm (red: not clipped, white: clipped)")
  axes[1].legend()
  fig.tight_layout()
  name = "clipping.png"
  fig.savefig(workdir / name, dpi=80)
  plt.close(fig)
  return name


def plot_depth(results: dict, workdir: pathlib.Path) -> str:
  plt = _pyplot()
  fig, axes = plt.subplots(1, 2, figsize=(10, 4))
  for connection in results["connections"]:
    rows = [r for r in results["rows"] if r["connection"] == connection]
    layers = [r["layers"] for r in rows]
    axes[0].plot(layers, [r["valid_ppl"] for r in rows], "o-", label=connection)
    axes[1].semilogy(layers, [r["bottom_grad_trained"] for r in rows], "o-", label=connection)
  if results.get("optimal_valid_ppl"):
    axes[0].axhline(results["optimal_valid_ppl"], color="gray", ls=":", label="optimum")
  axes[0].set_title(f"validation perplexity after {results['train_steps']} steps")
  axes[1].set_title("mean ||dJ/dh|| at the bottom layer (trained)")
  for ax in axes:
    ax.set_xscale("log", base=2)
    ax.set_xlabel("layers")
    ax.grid(alpha=0.3)
    ax.legend()
  fig.tight_layout()
  name = "depth.png"
  fig.savefig(workdir / name, dpi=80)
  plt.close(fig)
  return name


FIGURES: dict[str, Callable[[dict, pathlib.Path], str]] = {
    "spectral": plot_spectral,
    "cells": plot_cells,
    "long_range": plot_long_range,
    "clipping": plot_clipping,
    "depth": plot_depth,
}


def draw_figures(results: dict, workdir: str | os.PathLike) -> list[str]:
  """Draws the variant's figures into ``workdir``; returns their file names."""
  plot = FIGURES.get(results.get("variant"))
  return [plot(results, pathlib.Path(workdir))] if plot else []


# ---------------------------------------------------------------------------
# Tables.


def _spectral_md(r: dict) -> list[str]:
  rows = [[s["activation"], s["rho"], _fmt(s["theory_slope"], 4), _fmt(s["measured_slope"], 4),
           _fmt(s["measured_slope"] - s["theory_slope"], 2)
           if s["measured_slope"] is not None else "-",
           _fmt(s["max_singular_value"])] for s in r["slopes"]]
  return [f"Elman RNN, {r['hidden_size']} units, W_h {r['recurrent_init']} rescaled to "
          f"spectral radius rho; slope of the mean log gain "
          f"log(||dJ(i)/dh(i-l)|| / ||dJ(i)/dh(i)||) over distances {r['fit_from']}.."
          f"{len(r['distance']) - 1}, natural log per step.", "",
          metrics_lib.markdown_table(
              ["activation", "rho", "theory log(rho)", "measured slope",
               "measured - theory", "max singular value"], rows)] + _spectral_lru_md(r)


def _spectral_lru_md(r: dict) -> list[str]:
  if not r.get("lru_slopes"):
    return []
  rows = [[s["modulus"], _fmt(s["theory_slope"], 4), _fmt(s["measured_slope"], 4),
           _fmt(s["measured_slope"] - s["theory_slope"], 2)
           if s["measured_slope"] is not None else "-"] for s in r["lru_slopes"]]
  return ["", f"LRU (Orvieto et al. 2023), {r['hidden_size']} units, every eigenvalue "
          "modulus |lambda| = r (phases spread); the same fit.", "",
          metrics_lib.markdown_table(
              ["|lambda|", "theory log|lambda|", "measured slope", "measured - theory"],
              rows)]


def _cells_md(r: dict) -> list[str]:
  ref = str(r["reference_distance"])
  dists = [str(d) for d in r["distances"]]
  header = ["cell", "stage", "max spectral radius"] + [f"norm at {d}" for d in dists] + [
      "valid ppl"]
  rows = [[row["cell"], row["stage"], _fmt(row["spectral_radius"])]
          + [_fmt(row["norm_at"][d]) for d in dists] + [_fmt(row.get("valid_ppl"), 4)]
          for row in r["rows"]]
  lines = [f"Mean ||dJ(i)/dh(i-l)|| by distance l (probe: {r['data']}). 'init' rows: "
           f"Elman W_h rescaled to spectral radius {r['elman_rho_at_init']:g}; 'trained' "
           f"rows: {r['train_steps']} steps from each cell's own initialisation "
           "(orthogonal W_h per gate, spectral radius 1). Spectral radius: the largest "
           "over the recurrent matrices (gate blocks).", "",
           metrics_lib.markdown_table(header, rows), ""]
  for stage, ratios in r["ratio_to_elman_at_reference"].items():
    parts = ", ".join(f"{cell} {_fmt(v)}x" for cell, v in ratios.items())
    lines.append(f"- {stage}: gradient norm at distance {ref} relative to Elman: {parts}")
  return lines


_ERROR_NAMES = {"adding": "mean squared error; baseline: always predict 1",
                "copy": "cross-entropy per step (nats); baseline 10 log 8 / (T + 20)",
                "recall": "cross-entropy (nats) and accuracy; baseline log V"}


def _long_range_md(r: dict) -> list[str]:
  layers = r.get("num_layers", 1)  # results.json written before the field: one layer
  stack = (f"{layers} recurrent layers ({r.get('connection', 'none')} connection)"
           if layers > 1 else "One recurrent layer")
  options = r.get("cell_options") or {}
  options = (" with cell options " + ", ".join(f"{k}={v}" for k, v in options.items())
             if options else "")
  lines = [f"{stack} of {r['hidden_size']} units{options} and a linear head; "
           f"{r['optim']['name']} lr {r['optim']['learning_rate']:g}, clip "
           f"{r['optim']['clip_norm']:g}, batch {r['batch_size']}, a fixed step budget per "
           f"run, {r['seeds']} seeds (initialisation and data) per cell; error on "
           f"{r['eval_size']} held-out sequences. Solved: MSE < {r['solved_mse']:g} (adding), "
           f"accuracy >= {r['solved_accuracy']:g} on the answers (copy: the 10 copied "
           "symbols; recall: the symbol T steps back), in every seed. Each entry: mean "
           "error (seeds solved / seeds; a diverged seed has a non-finite error and no "
           "mean).", ""]

  def error(row):
    acc = f", acc {row['accuracy']:.2f}" if row.get("accuracy") is not None else ""
    solved = row["solved_by_seed"]
    diverged = sum(e is None for e in row["error_by_seed"])
    note = f", {diverged} diverged" if diverged else ""
    return f"{_fmt(row['error'])}{acc} ({sum(solved)}/{len(solved)}{note})"

  def share(row):
    return f"{_fmt(row['grad_share_init'])} -> {_fmt(row['grad_share_final'])}"

  for task in r["tasks"]:
    rows = {(row["model"], row["T"]): row for row in r["rows"] if row["task"] == task}
    lengths, models = r["lengths"][task], r["models"][task]
    baseline = {t: row["baseline"] for (_, t), row in rows.items()}
    header = ["model"] + [f"T={t}" for t in lengths]
    table = [["baseline"] + [_fmt(baseline[t]) for t in lengths] + ["-"]]
    table += [[m] + [error(rows[m, t]) if (m, t) in rows else "-" for t in lengths]
              + [_fmt(r["longest_solved"][task].get(m))] for m in models]
    grad = [[m] + [share(rows[m, t]) if (m, t) in rows else "-" for t in lengths]
            for m in models]
    lines += [f"## {task}: {_ERROR_NAMES.get(task, 'error')}; "
              f"{r['train_steps'][task]} steps per run", "",
              metrics_lib.markdown_table(header + ["longest T solved"], table), "",
              "||dJ/dh_1|| / ||dJ/dh_T||, the share of the gradient at the last state that "
              "reaches the first, at initialisation -> after training (geometric mean over "
              "seeds):", "", metrics_lib.markdown_table(header, grad), ""]
  return lines


def _clipping_md(r: dict) -> list[str]:
  rows = [[f"({r0['start'][0]:g}, {r0['start'][1]:g})",
           f"{r0['clip_norm']:g}" if r0["clip_norm"] else "none",
           _fmt(r0["final_loss"]), _fmt(r0["max_step"]), _fmt(r0["max_grad_norm"]),
           f"({r0['final_point'][0]:.2f}, {r0['final_point'][1]:.2f})"] for r0 in r["runs"]]
  m = r["mean_final_loss"]
  return [f"SGD, learning rate {r['learning_rate']:g}, {r['steps']} steps; loss surface "
          f"from {_fmt(r['surface_min'])} to {_fmt(r['surface_max'])}.", "",
          metrics_lib.markdown_table(["start (w, b)", "clip_norm", "final loss",
                                      "largest step", "largest grad norm",
                                      "final (w, b)"], rows), "",
          f"Mean final loss: clipped {_fmt(m['clipped'])}, not clipped "
          f"{_fmt(m['unclipped'])}."]


def _depth_md(r: dict) -> list[str]:
  rows = [[row["layers"], row["connection"], _fmt(row["valid_ppl"], 4),
           _fmt(row["bottom_grad_init"]), _fmt(row["bottom_grad_trained"]),
           _fmt(row["bottom_over_top_trained"])] for row in r["rows"]]
  optimum = (f" (optimum {r['optimal_valid_ppl']:.2f})" if r.get("optimal_valid_ppl")
             else "")
  return [f"{r['cell']} {r['hidden_size']} units per layer, {r['train_steps']} steps on "
          f"{r['data']}{optimum}; gradient = mean ||dJ/dh_t|| of the bottom layer's "
          "state, J the mean token loss of a probe window.", "",
          metrics_lib.markdown_table(["layers", "connection", "valid ppl",
                                      "bottom grad (init)", "bottom grad (trained)",
                                      "bottom / top (trained)"], rows)]


TABLES: dict[str, tuple[str, Callable[[dict], list[str]]]] = {
    "spectral": ("Gradient norm against distance by spectral radius", _spectral_md),
    "cells": ("Gradient flow in Elman, LSTM and GRU", _cells_md),
    "long_range": ("Long-range memory: adding, copy, recall against T", _long_range_md),
    "clipping": ("Gradient clipping on a cliff", _clipping_md),
    "depth": ("Depth and skip connections", _depth_md),
}


def results_markdown(results: dict) -> str:
  """results.md of a gradient study: title, table(s), figures."""
  title, table = TABLES[results["variant"]]
  lines = [f"# {title} (`{results['variant']}`)", "", *table(results), ""]
  lines += [f"![{name}]({name})" for name in results.get("figures", [])]
  return "\n".join(lines)


def redraw(workdir: str | os.PathLike) -> dict:
  """Figures and results.md of a gradient-study workdir again from its results.json
  (after a change to a figure or a table; no rerun)."""
  workdir = pathlib.Path(workdir)
  results = json.loads((workdir / "results.json").read_text())
  if results.get("variant") not in TABLES:
    return results
  results["figures"] = draw_figures(results, workdir)
  metrics_lib.write_results(workdir, results, results_markdown(results))
  return results


# ---------------------------------------------------------------------------
# Several workdirs -> one page.


def headline(results: dict) -> str:
  """One line of a run's key numbers, for the summary table."""
  variant = results.get("variant")
  if variant == "spectral":
    worst = max((abs(s["measured_slope"] - s["theory_slope"]) for s in results["slopes"]
                 if s["activation"] == "identity" and s["measured_slope"] is not None),
                default=None)
    return f"identity: largest abs(measured slope - log(rho)) = {_fmt(worst)}"
  if variant == "cells":
    ref = results["reference_distance"]
    return "; ".join(f"{stage} @{ref}: " + ", ".join(f"{c} {_fmt(v)}x" for c, v in r.items())
                     for stage, r in results["ratio_to_elman_at_reference"].items()) + " Elman"
  if variant == "long_range":
    return "; ".join(f"{task} longest T solved: " + ", ".join(
        f"{model} {_fmt(t)}" for model, t in results["longest_solved"][task].items())
        for task in results["tasks"])
  if variant == "clipping":
    m = results["mean_final_loss"]
    return f"final loss clipped {_fmt(m['clipped'])} vs not {_fmt(m['unclipped'])}"
  if variant == "depth":
    # float(): results.json holds a diverged run's perplexity as the string "inf".
    best = min(results["rows"], key=lambda r: float(r["valid_ppl"]))
    return (f"best valid ppl {float(best['valid_ppl']):.2f} ({best['layers']}x "
            f"{best['connection']})")
  if isinstance(results.get("error_by_attractors"), dict):  # the agreement study
    errors = ", ".join(f"{k}: {_fmt(v.get('error') if isinstance(v, dict) else v)}"
                       for k, v in results["error_by_attractors"].items())
    return f"{results.get('cell', '')} error by attractors {errors}".strip()
  if "valid_ppl" in results:
    return f"valid ppl {_fmt(results['valid_ppl'], 4)}, test ppl {_fmt(results.get('test_ppl'), 4)}"
  return ", ".join(f"{k} {_fmt(v)}" for k, v in results.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool))[:200]


def _demote(markdown: str) -> str:
  """Headings one level down, so a run's results.md nests under its section."""
  return "\n".join("#" + line if line.startswith("#") else line
                   for line in markdown.splitlines())


def collect(workdirs: list[str], output: str | os.PathLike) -> str:
  """One markdown page for several workdirs, written to ``output`` and returned.

  Figure links are relative to the page's folder. A workdir without
  results.json is an error naming it.
  """
  output = pathlib.Path(output)
  base = output.resolve().parent
  summary, sections = [], []
  for workdir in workdirs:
    path = pathlib.Path(workdir)
    results_path = path / "results.json"
    if not results_path.exists():
      raise FileNotFoundError(f"{results_path} not found: is {workdir} a finished run?")
    results = json.loads(results_path.read_text())
    config = json.loads((path / "config.json").read_text()) if (
        path / "config.json").exists() else {}
    study = (results.get("variant") or config.get("name") or results.get("task")
             or config.get("task") or "run")
    summary.append([f"[{workdir}](#{_anchor(workdir)})", study, headline(results)])
    body = (path / "results.md").read_text() if (path / "results.md").exists() else ""
    rel = os.path.relpath(path.resolve(), base)
    body = _relink(body, rel)
    sections += [f"## {workdir}", "", _demote(body).strip(), ""]
    figures = results.get("figures") or sorted(p.name for p in path.glob("*.png"))
    missing = [f for f in figures if f"{rel}/{f})" not in body]
    sections += [f"![{f}]({rel}/{f})" for f in missing]
  page = "\n".join(["# Report", "", metrics_lib.markdown_table(
      ["workdir", "study", "headline"], summary), "", *sections]) + "\n"
  metrics_lib.atomic_write(output, page)
  return page


def _anchor(text: str) -> str:
  return "".join(ch for ch in text.lower().replace(" ", "-")
                 if ch.isalnum() or ch in "-_")


def _relink(markdown: str, rel: str) -> str:
  """Image links of a results.md (relative to its workdir) made relative to the page."""
  import re  # pylint: disable=g-import-not-at-top
  return re.sub(r"!\[([^\]]*)\]\((?![a-z]+://|/)([^)]+)\)",
                lambda m: f"![{m.group(1)}]({rel}/{m.group(2)})", markdown)
