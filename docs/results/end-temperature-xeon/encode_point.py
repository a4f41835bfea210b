import sys, json, time
from dataclasses import replace
from lotto_media.allocator import retain_freed_memory
retain_freed_memory()
import lotto_media.search.presets as P
img, q, t0, t1, seed, pre = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
P.PRESETS[pre] = replace(P.PRESETS[pre], temperature=(t0, t1), temperature_end_high=None)
from lotto_media import codec
from lotto_media.frame import Frame
from lotto_media.metrics import bpp as bpp_of
from lotto_media.pipelines.bench_images import load_rgb
from pathlib import Path
rgb,_=load_rgb(Path(f"/work/shared/media/images/kodak/{img}.png"),2)
opts=codec.EncodeOptions(quality=q,preset=pre,threads=1,seed=seed)
assert opts.schedule().temperature == (t0, t1)
t=time.perf_counter(); r=codec.encode_frame(Frame.from_array(rgb),opts); s=time.perf_counter()-t
b=codec.coded_bytes(r.data); h,w=rgb.shape[:2]
bpp=bpp_of(b,w,h); psnr=float(r.info.psnr); mse=10**(-psnr/10)
print(json.dumps({"image":img,"q":q,"temperature":[t0,t1],"seed":seed,"preset":pre,"bytes":b,"bpp":bpp,"psnr":psnr,"J":mse+r.info.lmbda*bpp,"s":round(s,1)}), flush=True)
