"""CiscoVT2people whole clip, restarts on (1.5) or off (inf): per-frame bytes and PSNR."""
import io, json, sys, logging
from pathlib import Path
logging.basicConfig(level=logging.INFO, format="%(name)s %(message)s")
import lotto_media.stream as stream
from pipelines.bench_video import read_clip
from lotto_media.options import EncodeOptions
clip_name, quality, preset, seed, ratio = sys.argv[1], float(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
stream.RESTART_COST_RATIO = ratio
clip = read_clip(Path("/work/shared/media/video") / clip_name)
enc = stream.StreamEncoder(clip.video, EncodeOptions(quality=quality, preset=preset, threads=1, seed=seed), gop=32, n_frames=len(clip.frames))
if len(sys.argv) > 6:
    from dataclasses import replace
    enc.schedule = replace(enc.schedule, warm_soft_steps=int(sys.argv[6]))
buf = io.BytesIO()
with stream.LottoWriter(buf, enc.header) as w:
    coded = stream.encode_frames(enc, clip.frames, w)
from lotto_media import codec
print(json.dumps({"clip": clip_name, "q": quality, "preset": preset, "seed": seed, "ratio": ratio, "warm": sys.argv[6] if len(sys.argv) > 6 else None,
                  "stream_bytes": codec.coded_bytes(buf.getvalue()), "bytes": [len(p.data) for p in coded],
                  "psnr": [round(p.psnr, 2) for p in coded], "s": [round(p.seconds, 1) for p in coded]}), flush=True)
