import json, sys, time, io, logging
logging.basicConfig(level=logging.INFO, format="%(name)s %(message)s")
from pathlib import Path
from pipelines.bench_video import read_clip
from lotto_media.options import EncodeOptions
from lotto_media.stream import LottoWriter, StreamEncoder, encode_frames
clip_name, quality, preset, seed = sys.argv[1], float(sys.argv[2]), sys.argv[3], int(sys.argv[4])
maxf = int(sys.argv[5]) if len(sys.argv) > 5 else None
clip = read_clip(Path("/work/shared/media/video") / clip_name, maxf)
opts = EncodeOptions(quality=quality, preset=preset, threads=1, seed=seed)
enc = StreamEncoder(clip.video, opts, gop=32, n_frames=len(clip.frames))
buf = io.BytesIO()
with LottoWriter(buf, enc.header) as w:
    coded = encode_frames(enc, clip.frames, w)
print(json.dumps({"clip": clip_name, "q": quality, "seed": seed, "bytes": [len(p.data) for p in coded],
                  "psnr": [round(p.psnr, 2) for p in coded], "s": [round(p.seconds, 1) for p in coded]}))
