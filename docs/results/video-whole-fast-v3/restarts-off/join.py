"""The v3 run's points with the Cisco q30/q45 lotto points replaced by their restarts-off reruns."""
import json, sys
from pathlib import Path
from pipelines.bench_video import write_video_report
run = [json.loads(l) for l in open(sys.argv[1])]
before = [json.loads(l) for l in open(sys.argv[2])]
key = lambda r: (r["clip"], r["codec"], r["setting"])
replaced = {key(r) for r in before}
records = [r for r in run if key(r) not in replaced] + before
out = Path(sys.argv[3]); out.mkdir(parents=True, exist_ok=True)
with open(out / "video_points.jsonl", "w") as f:
    for r in records: f.write(json.dumps(r) + "\n")
write_video_report(records, out, ["x265-intra", "x265-inter", "x264-intra", "x264-inter"], "joined: " + " ".join(sys.argv[1:]))
