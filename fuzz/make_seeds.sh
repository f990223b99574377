#!/bin/sh
# make_seeds.sh [OUT]: the seed corpora of the fuzz targets, one folder per
# target under OUT (default build-fuzz/corpus): files ltorch writes
# (make_seeds.lua, with the ordinary build's core.so), files PyTorch and
# NumPy write (make_seeds.py, /usr/bin/python3; skipped with a note when it
# has no torch), and the small committed fixtures of spec/fixtures. Run from
# the checkout; `make fuzz` runs it when it or the build changes.
set -e
out=${1:-build-fuzz/corpus}
py=${PYTHON:-/usr/bin/python3}
for t in pickle zip pt safetensors npy npz torchsharp json t7 gguf; do
  rm -rf "$out/$t"
  mkdir -p "$out/$t"
done
lua5.4 fuzz/make_seeds.lua "$out"
if "$py" -c 'import torch, numpy' 2>/dev/null; then
  "$py" fuzz/make_seeds.py "$out"
else
  echo "make_seeds: $py has no torch and numpy: no PyTorch-written seeds"
fi
# the byte-by-byte fixture writers (standard library only): Torch7 files,
# binary and ascii; TorchSharp optimizer states and single tensors
"$py" spec/fixtures/t7/t7ref.py make "$out/t7" >/dev/null
"$py" spec/fixtures/fmt/ts_optim.py write "$out/torchsharp" >/dev/null
# the committed fixtures, damaged ones included (they reach the checks)
for f in spec/fixtures/pt/*.pt; do cp "$f" "$out/pt/fixture_$(basename "$f")"; cp "$f" "$out/zip/fixture_$(basename "$f")"; done
for f in spec/fixtures/fmt/*.safetensors spec/fixtures/fmt/sharded/*.safetensors; do
  cp "$f" "$out/safetensors/fixture_$(basename "$f")"
done
for f in spec/fixtures/fmt/*.npy; do cp "$f" "$out/npy/fixture_$(basename "$f")"; done
for f in spec/fixtures/fmt/*.dat; do cp "$f" "$out/torchsharp/fixture_$(basename "$f")"; done
for f in spec/fixtures/fmt/sharded/*.json; do cp "$f" "$out/json/fixture_$(basename "$f")"; done
# the pickles inside the zip seeds, and the npy members of the npz seeds
"$py" - "$out" <<'PY'
import os, sys, zipfile
out = sys.argv[1]
n = 0
for src in ("pt", "npz", "zip"):
    d = os.path.join(out, src)
    for name in sorted(os.listdir(d)):
        try:
            z = zipfile.ZipFile(os.path.join(d, name))
            members = [(m, z.read(m)) for m in z.namelist()]
        except Exception:
            continue
        for m, data in members:
            base = name.replace(".", "_") + "_" + m.replace("/", "_")
            if m.endswith(".pkl"):
                open(os.path.join(out, "pickle", base), "wb").write(data)
                n += 1
            elif m.endswith(".npy"):
                open(os.path.join(out, "npy", base), "wb").write(data)
                n += 1
print("make_seeds: %d members extracted" % n)
PY
# the zip target takes every archive
cp "$out"/npz/* "$out"/pt/* "$out/zip/" 2>/dev/null || true
for t in pickle zip pt safetensors npy npz torchsharp json t7 gguf; do
  printf '%s: %s files\n' "$t" "$(ls "$out/$t" | wc -l)"
done
