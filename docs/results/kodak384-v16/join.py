"""Join kodak384-v12's points with a newer run's lotto points at the qualities it reran; report."""
import json, sys
from pathlib import Path
sys.path.insert(0, "/work/main")
from pipelines.bench_images import write_images_report

base, new, out, note = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
new_pts = [json.loads(l) for l in new.read_text().splitlines() if l.strip()]
new_lotto = [r for r in new_pts if r["codec"].startswith("lotto")]
redone = {(r["codec"], r["image"], r["quality"]) for r in new_lotto}
base_pts = [json.loads(l) for l in base.read_text().splitlines() if l.strip()]
kept = [r for r in base_pts if (r["codec"], r["image"], r.get("quality")) not in redone]
old = {(r["codec"], r["image"], r.get("quality")): r for r in base_pts}
def J(r): return 10 ** (-r["psnr_rgb"] / 10) + r["lmbda"] * r["bpp"]
for r in sorted(new_lotto, key=lambda r: (r["quality"], r["image"])):
    o = old.get((r["codec"], r["image"], r["quality"]))
    if o:
        print(r["image"], r["quality"], f'{o["bpp"]:.3f} bpp {o["psnr_rgb"]:.2f} dB -> {r["bpp"]:.3f} {r["psnr_rgb"]:.2f}  J {100*(J(r)/J(o)-1):+.2f} %  bit_exact {r["bit_exact"]}  enc {r["encode_s"]:.0f} s')
records = kept + new_lotto
out.mkdir(parents=True, exist_ok=True)
(out / "points.jsonl").write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
anchors = ["jpeg", "webp", "x264", "x265", "x265-420", "svtav1"]
write_images_report(records, out, anchors, sys.argv[5], [note])
