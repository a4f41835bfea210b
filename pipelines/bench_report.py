"""Turning benchmark points into results: Bjøntegaard tables, markdown summaries and RD plots.

Input everywhere is the list of point records that ``bench`` writes one per JSON line. Only points
with ``status == "ok"`` enter curves. Averages over images are the mean of the per-image
Bjøntegaard deltas (the usual way Kodak results are quoted), with the number of images that had a
result; a curve pair with no overlap on an image is listed as such, never extrapolated.
"""

from __future__ import annotations

import math
import os
import platform
import re
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path

from .bdrate import BDResult, bd_psnr, bd_rate

Record = dict[str, object]
Curve = list[tuple[float, float]]


# ----------------------------------------------------------------------------------------------
# Machine and versions


def cpu_model() -> str:
    """The CPU model name as the kernel reports it (falls back to platform.processor())."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_info() -> dict[str, object]:
    """What a reader needs to reproduce the timings: CPU, cores, OS and library versions."""
    import torch

    from lotto_media.search.train import bfloat16_steps

    return {
        "cpu": cpu_model(),
        # the encoder's speed, and at medium its search (bfloat16 steps or not), follow these
        "vector_isa": torch.backends.cpu.get_cpu_capability(),
        "bfloat16_steps": bfloat16_steps(torch.device("cpu")),
        "cores": os.cpu_count(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "lotto-media": _version("lotto-media"),
        "torch": _version("torch"),
        "av": _version("av"),
        "numpy": _version("numpy"),
        "pillow": _version("pillow"),
    }


def _vector_words(machine: dict[str, object]) -> str:
    known = machine.get("bfloat16_steps")
    bfloat16 = "steps' precision unknown" if known is None else "bfloat16 steps" if known else "float32 steps"
    return f"torch kernels {machine.get('vector_isa', 'unknown')}, {bfloat16}"


def _machine_lines(command: str, machine: dict[str, object]) -> list[str]:
    versions = ", ".join(f"{k} {machine[k]}" for k in ("lotto-media", "torch", "av", "numpy", "pillow", "python"))
    return [
        f"- command: `{command}`",
        f"- date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
        f"- machine: {machine['cpu']} ({_vector_words(machine)}), {machine['cores']} logical cores, {machine['os']}",
        f"- versions: {versions}",
    ]


# ----------------------------------------------------------------------------------------------
# Curves and Bjøntegaard deltas


def curves_by(records: Iterable[Record], group: str, rate: str, quality: str) -> dict[str, dict[str, Curve]]:
    """{group value (e.g. image): {codec: [(rate, quality), ...] sorted by rate}} from ok points."""
    out: dict[str, dict[str, Curve]] = defaultdict(lambda: defaultdict(list))
    for rec in records:
        if rec.get("status") != "ok":
            continue
        r, q = rec.get(rate), rec.get(quality)
        if isinstance(r, (int, float)) and isinstance(q, (int, float)):
            out[str(rec[group])][str(rec["codec"])].append((float(r), float(q)))
    return {g: {c: sorted(pts) for c, pts in codecs.items()} for g, codecs in out.items()}


def bd_matrix(curves: dict[str, dict[str, Curve]], anchors: Sequence[str]) -> dict[str, dict[str, dict[str, dict[str, BDResult]]]]:
    """{group: {codec: {anchor: {"bd_rate": BDResult, "bd_psnr": BDResult}}}} for every codec != anchor."""
    out: dict[str, dict[str, dict[str, dict[str, BDResult]]]] = {}
    for group, codecs in curves.items():
        out[group] = {}
        for codec, curve in codecs.items():
            out[group][codec] = {}
            for anchor in anchors:
                if anchor == codec or anchor not in codecs:
                    continue
                out[group][codec][anchor] = {
                    "bd_rate": bd_rate(codecs[anchor], curve),
                    "bd_psnr": bd_psnr(codecs[anchor], curve),
                }
    return out


def mean_bd(matrix: dict[str, dict[str, dict[str, dict[str, BDResult]]]], codec: str, anchor: str,
            metric: str) -> tuple[float | None, int, int]:
    """(mean over groups of the computed deltas, groups with a value, groups compared)."""
    values, compared = [], 0
    for codecs in matrix.values():
        result = codecs.get(codec, {}).get(anchor, {}).get(metric)
        if result is None:
            continue
        compared += 1
        if result.value is not None:
            values.append(result.value)
    return (sum(values) / len(values) if values else None), len(values), compared


def bd_to_json(matrix: dict[str, dict[str, dict[str, dict[str, BDResult]]]]) -> dict[str, object]:
    return {
        group: {codec: {anchor: {m: r.to_dict() for m, r in res.items()} for anchor, res in per_anchor.items()}
                for codec, per_anchor in codecs.items()}
        for group, codecs in matrix.items()
    }


def _cell(result: BDResult | None) -> str:
    if result is None:
        return "-"
    text = str(result)
    if result.value is not None and (result.anchor_outside or result.test_outside):
        text += f" ({result.anchor_outside}a/{result.test_outside}t out)"
    return text


def _mean_cell(value: float | None, n: int, compared: int, unit: str) -> str:
    if compared == 0:
        return "-"
    if value is None:
        return "no overlap" if n == 0 else "n/a"
    suffix = f" [{n}/{compared}]" if n != compared or compared > 1 else ""
    return f"{value:+.2f}{unit}{suffix}"


def _table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def _fmt(value: object, digits: int = 3) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.{digits}f}"
    return "-" if value is None else str(value)


def bd_section(matrix: dict[str, dict[str, dict[str, dict[str, BDResult]]]], codecs: Sequence[str],
               anchors: Sequence[str], group_label: str) -> list[str]:
    """Markdown: mean BD-rate and BD-PSNR tables (codec x anchor), then per-group BD-rate tables."""
    lines: list[str] = []
    for metric, title, unit in (("bd_rate", "BD-rate", " %"), ("bd_psnr", "BD-PSNR", " dB")):
        lines += ["", f"### {title} against each anchor (mean over {group_label}s; [with result/compared])", ""]
        rows = []
        for codec in codecs:
            cells = [_mean_cell(*mean_bd(matrix, codec, anchor, metric), unit) if codec != anchor else "0 (self)"
                     for anchor in anchors]
            rows.append([codec, *cells])
        lines += _table(["codec \\ anchor", *anchors], rows)
    lines += ["", f"### BD-rate per {group_label} (negative: fewer bits than the anchor at equal PSNR; "
              "'a/t out': anchor/test points outside the shared PSNR range, not extrapolated)"]
    for anchor in anchors:
        lines += ["", f"Against **{anchor}**:", ""]
        others = [c for c in codecs if c != anchor]
        rows = [[group, *(_cell(matrix[group].get(c, {}).get(anchor, {}).get("bd_rate")) for c in others)]
                for group in sorted(matrix)]
        lines += _table([group_label, *others], rows)
    return lines


def psnr_at_rate(curve: Curve, rate: float) -> float | None:
    """The PSNR of ``curve`` ((rate, PSNR) points) at ``rate``, linear in log-rate between its two
    neighbouring points; None outside the curve's rate range (never extrapolated)."""
    points = sorted((math.log(r), q) for r, q in curve if 0 < r < math.inf and math.isfinite(q))
    x = math.log(rate) if rate > 0 else -math.inf
    for (x0, q0), (x1, q1) in zip(points, points[1:]):
        if x0 <= x <= x1:
            return q0 if x1 == x0 else q0 + (q1 - q0) * (x - x0) / (x1 - x0)
    return None


def gap_section(records: Sequence[Record], codecs: Sequence[str], anchors: Sequence[str]) -> list[str]:
    """Markdown: for each lotto-media setting, how far each anchor's PSNR lies above ours at our
    rate (mean over images), with the points beyond the anchor's rates counted and left out."""
    curves = curves_by(records, "image", "bpp", "psnr_rgb")
    compared = [a for a in anchors if not a.startswith("lotto")]
    lines = ["", "## PSNR gap to each anchor at the same rate (anchor - lotto-media, dB; mean over "
             "images; [within the anchor's rates/points])", ""]
    rows = []
    for codec in (c for c in codecs if c.startswith("lotto")):
        by_setting: dict[object, list[Record]] = defaultdict(list)
        for rec in records:
            if (rec.get("codec") == codec and rec.get("status") == "ok"
                    and math.isfinite(float(rec["bpp"])) and math.isfinite(float(rec["psnr_rgb"]))):
                by_setting[rec.get("setting")].append(rec)
        for setting, recs in sorted(by_setting.items(), key=lambda kv: _mean([r["bpp"] for r in kv[1]])):
            cells = []
            for anchor in compared:
                gaps = [psnr_at_rate(curves[str(r["image"])].get(anchor, []), float(r["bpp"])) for r in recs]
                found = [g - float(r["psnr_rgb"]) for g, r in zip(gaps, recs) if g is not None]
                cells.append(f"{_mean(found):+.2f} [{len(found)}/{len(recs)}]" if found else f"- [0/{len(recs)}]")
            rows.append([codec, setting, *cells])
    if not rows:
        return []
    return lines + _table(["codec", "setting", *compared], rows)


# ----------------------------------------------------------------------------------------------
# Mean curves and plots


def mean_curves(records: Sequence[Record], rate: str, quality: str, group: str) -> dict[str, Curve]:
    """Per codec, the mean (rate, quality) of each setting over all groups, kept only for settings
    that succeeded on every group (a mean over a different set of images would not be comparable)."""
    groups = {str(r[group]) for r in records}
    by_setting: dict[tuple[str, object], list[tuple[float, float]]] = defaultdict(list)
    for rec in records:
        if rec.get("status") == "ok" and isinstance(rec.get(rate), (int, float)):
            by_setting[(str(rec["codec"]), rec.get("setting"))].append((float(rec[rate]), float(rec[quality])))
    out: dict[str, Curve] = defaultdict(list)
    for (codec, _), pts in by_setting.items():
        if len(pts) == len(groups):
            out[codec].append((sum(p[0] for p in pts) / len(pts), sum(p[1] for p in pts) / len(pts)))
    return {codec: sorted(pts) for codec, pts in out.items()}


def plot_rd(curves: dict[str, Curve], path: Path, title: str, xlabel: str = "bpp",
            ylabel: str = "PSNR-RGB (dB)") -> None:
    """One PNG with one curve per codec (lotto-media curves drawn thicker)."""
    # The object-oriented API (no pyplot) keeps no global figure state and needs no GUI backend.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 5), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for codec in sorted(curves):
        pts = curves[codec]
        if not pts:
            continue
        lotto = codec.startswith("lotto")
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", markersize=3,
                linewidth=2.2 if lotto else 1.2, label=codec)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


def safe_name(name: str) -> str:
    """A file-name-safe version of an image or clip name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "unnamed"


# ----------------------------------------------------------------------------------------------
# Summaries


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def points_section(records: Sequence[Record], rate: str, quality: str, extra: Sequence[tuple[str, str]],
                   rate_label: str, quality_label: str) -> list[str]:
    """Per codec and setting, the means over groups of rate, quality and the ``extra`` fields."""
    by_key: dict[tuple[str, str, object], list[Record]] = defaultdict(list)
    for rec in records:
        if rec.get("status") == "ok":
            by_key[(str(rec["codec"]), str(rec.get("param", "")), rec.get("setting"))].append(rec)
    header = ["codec", "setting", "n", rate_label, quality_label, *(label for _, label in extra)]
    rows = []
    for (codec, param, setting), recs in sorted(by_key.items(), key=lambda kv: (kv[0][0], _mean([r[rate] for r in kv[1]]))):
        row = [codec, f"{param} {setting}", len(recs), _fmt(_mean([r[rate] for r in recs]), 4),
               _fmt(_mean([r[quality] for r in recs]), 2)]
        for key, _ in extra:
            vals = [r[key] for r in recs if isinstance(r.get(key), (int, float))]
            row.append(_fmt(_mean(vals), 4) if vals else "-")
        rows.append(row)
    return _table(header, rows)


def failures_section(records: Sequence[Record], group: str) -> list[str]:
    bad = [r for r in records if r.get("status") != "ok"]
    if not bad:
        return []
    lines = ["", "## Points without a result", ""]
    rows = [[r.get(group), r.get("codec"), f"{r.get('param', '')} {r.get('setting')}", r.get("status"),
             str(r.get("error", "")).replace("|", "/")] for r in bad]
    return lines + _table([group, "codec", "setting", "status", "reason"], rows)


def images_summary(records: Sequence[Record], matrix, codecs: Sequence[str], anchors: Sequence[str],
                   command: str, machine: dict[str, object], notes: Sequence[str] = ()) -> str:
    """The markdown summary of ``bench images``."""
    images = sorted({str(r["image"]) for r in records})
    sizes = sorted({f"{r.get('width')}x{r.get('height')}" for r in records})
    lines = ["# lotto-media bench images", "", *_machine_lines(command, machine),
             f"- images: {len(images)} ({', '.join(sizes)})", *(f"- {n}" for n in notes),
             "", "Rate is bits per pixel of the counted bytes (see docs/BENCH.md); distortion is PSNR-RGB "
             "(MSE pooled over R, G, B) on the decoded pixels.", "", "## Bjøntegaard deltas"]
    lines += bd_section(matrix, codecs, anchors, "image")
    lines += gap_section(records, codecs, anchors)
    lines += ["", "## Mean points (over images)", ""]
    lines += points_section(records, "bpp", "psnr_rgb",
                            [("ms_ssim", "MS-SSIM"), ("encode_s", "encode s"), ("decode_s", "decode s")],
                            "bpp", "PSNR-RGB")
    lotto = [r for r in records if str(r.get("codec", "")).startswith("lotto") and r.get("status") == "ok"]
    if lotto:
        exact = sum(1 for r in lotto if r.get("bit_exact"))
        lines += ["", f"lotto-media decode equals the encoder's reconstruction on {exact}/{len(lotto)} points."]
    lines += failures_section(records, "image")
    return "\n".join(lines) + "\n"


def video_summary(records: Sequence[Record], matrix, codecs: Sequence[str], anchors: Sequence[str],
                  command: str, machine: dict[str, object]) -> str:
    """The markdown summary of ``bench video``."""
    clips = sorted({str(r["clip"]) for r in records})
    lines = ["# lotto-media bench video", "", *_machine_lines(command, machine),
             f"- clips: {', '.join(clips)}", "",
             "Rate is kbps of the counted elementary-stream bytes; distortion is PSNR-YUV = "
             "(6·Y + U + V)/8 of the mean per-frame plane PSNRs, on native planes.", "",
             "## Bjøntegaard deltas (kbps vs PSNR-YUV)"]
    lines += bd_section(matrix, codecs, anchors, "clip")
    lines += ["", "## Mean points (over clips)", ""]
    lines += points_section(records, "kbps", "psnr_yuv",
                            [("psnr_y", "PSNR-Y"), ("psnr_u", "PSNR-U"), ("psnr_v", "PSNR-V"),
                             ("encode_s_per_frame", "enc s/frame"), ("decode_fps", "dec fps")],
                            "kbps", "PSNR-YUV")
    lines += failures_section(records, "clip")
    return "\n".join(lines) + "\n"


def speed_summary(records: Sequence[Record], command: str, machine: dict[str, object]) -> str:
    """The markdown summary of ``bench speed``."""
    lines = ["# lotto-media bench speed", "", *_machine_lines(command, machine), "",
             "Search speed is pixel-steps per second (pixels / seconds per optimiser step, timed between the "
             "first and last progress reports); seconds per frame are for the preset's full schedule "
             "(marked *: the fixed cost measured plus the preset's steps at the measured step time). "
             "Decode is the fastest of the repeated decodes of the file (the random network already generated); "
             "the cold decode also regenerates it, as a decoder's first frame does. "
             "Peak memory is the peak resident set size of a fresh process that did one encode and decode.", ""]
    rows = []
    for r in records:
        if r.get("status") != "ok":
            rows.append([r.get("preset"), r.get("size", "-"), r.get("device", "cpu"), "-", "-", "-", "-", "-", "-", "-",
                         f"{r.get('status')}: {r.get('error')}"])
            continue
        spf = _fmt(r["s_per_frame"], 1) + ("*" if r.get("extrapolated") else "")
        rows.append([r["preset"], f"{r['width']}x{r['height']}", r.get("device", "cpu"), f"{r['steps_run']}/{r['preset_steps']}",
                     f"{r['pixel_steps_per_s']:.3g}", spf, _fmt(r["decode_ns_per_pixel"], 0),
                     _fmt(r.get("decode_cold_ns_per_pixel"), 0),
                     _fmt(r["kmac_per_pixel"], 2), _fmt(r["peak_rss_mb"], 0), ""])
    lines += _table(["preset", "size", "search on", "steps run/preset", "pixel-steps/s", "s/frame", "decode ns/pixel",
                     "cold decode ns/pixel", "kMAC/pixel", "peak RSS MB", "note"], rows)
    return "\n".join(lines) + "\n"
