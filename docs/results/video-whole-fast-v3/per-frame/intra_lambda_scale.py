"""One whole-clip lotto point with the intra frame's lambda scaled (experiment)."""
import json, math, sys, time
from pathlib import Path
import lotto_media.search.inter as inter
from pipelines.bench_video import read_clip, VideoTask, _lotto_video_point
from lotto_media.search.presets import quality_to_lmbda

clip_name, quality, scale, preset = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
threads = int(sys.argv[5]) if len(sys.argv) > 5 else 1
max_frames = int(sys.argv[6]) if len(sys.argv) > 6 and sys.argv[6] != "0" else None
orig = inter.search_group
def scaled(targets, config, schedule, lmbda, *a, **k):
    return orig(targets, config, schedule, lmbda * scale, *a, **k)
inter.search_group = scaled
clip = read_clip(Path("/work/shared/media/video") / clip_name, max_frames)
task = VideoTask(clip, f"lotto-{preset}", "group", "quality", quality, preset, None, threads, gop=32)
t = time.perf_counter()
r = _lotto_video_point(task)
n = len(clip.frames); v = clip.video
bpp = r["bytes"] * 8 / (v.width * v.height) / n
lm = quality_to_lmbda(quality)
mse = 10 ** (-r["psnr_yuv"] / 10)
print(json.dumps({"clip": clip_name, "q": quality, "scale": scale, "preset": preset, "frames": n,
                  "bytes": r["bytes"], "first": r["first_frame_bytes"], "later": r["later_frame_bytes"],
                  "psnr_yuv": round(r["psnr_yuv"], 4), "psnr_y": round(r["psnr_y"], 4), "bpp": bpp,
                  "J": mse + lm * bpp, "bit_exact": r["bit_exact"], "s": round(time.perf_counter() - t, 1)}), flush=True)
