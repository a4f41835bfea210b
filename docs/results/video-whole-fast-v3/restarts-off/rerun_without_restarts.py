"""Re-encode the lotto points of a bench video run where a group restarted, with restarts off
(RESTART_COST_RATIO = inf: the code before c65f6aa), two at a time; records as the bench writes them."""
import json, sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

def point(args):
    clip_name, quality = args
    import lotto_media.stream as stream
    stream.RESTART_COST_RATIO = float("inf")
    from pipelines.bench_video import read_clip, VideoTask, measure_video_point
    clip = read_clip(Path("/work/shared/media/video") / f"{clip_name}.y4m")
    return measure_video_point(VideoTask(clip, "lotto-fast", "group", "quality", quality, "fast", None, 1, gop=32))

points = [json.loads(l) for l in open(sys.argv[1])]
todo = [(p["clip"], p["quality"]) for p in points if p["encoder"].startswith("lotto") and p.get("intra_frames", 1) > 1]
print("rerun", todo, flush=True)
with ProcessPoolExecutor(2) as pool, open(sys.argv[2], "w") as out:
    for rec in pool.map(point, todo):
        out.write(json.dumps(rec) + "\n"); out.flush()
        print(rec["clip"], rec["quality"], rec["bytes"], rec["psnr_yuv"], rec["intra_frames"], flush=True)
