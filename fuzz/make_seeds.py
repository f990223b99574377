# make_seeds.py OUT: the PyTorch- and NumPy-written seeds of the fuzz
# targets (fuzz/make_seeds.sh runs it with /usr/bin/python3, which has
# torch): .pt files in the zip and the legacy format, .npy and .npz files
# NumPy writes (strings, objects, Fortran order, big-endian), and plain
# pickles of every protocol.
import collections
import io
import os
import pickle
import sys
import zipfile

import numpy as np
import torch

out = sys.argv[1]
count = 0


def path(target, name):
    return os.path.join(out, target, name)


def save_pt(name, value, legacy=False):
    global count
    torch.save(value, path("pt", name), _use_new_zipfile_serialization=not legacy)
    count += 1


torch.manual_seed(18)
m = torch.arange(12, dtype=torch.float32).view(3, 4)
sd = collections.OrderedDict(
    [("fc.weight", m), ("fc.bias", torch.zeros(4)), ("emb", torch.arange(6, dtype=torch.int64)),
     ("half", m.half()), ("bf", m.bfloat16()), ("mask", m > 3), ("c", torch.complex(m, m))])
nested = {"epoch": 3, "lr": 0.1, "betas": (0.9, 0.999), "name": "run", "none": None,
          "model": sd, "views": [m.t(), m[1], m[:, 2]], "big": 2 ** 70, "bytes": b"\x00\xff"}
for legacy in (False, True):
    tag = "_legacy" if legacy else ""
    save_pt("py_sd%s.pt" % tag, sd, legacy)
    save_pt("py_nested%s.pt" % tag, nested, legacy)
    save_pt("py_tensor%s.pt" % tag, m, legacy)
    save_pt("py_module%s.pt" % tag, torch.nn.Linear(3, 2).state_dict(), legacy)
    save_pt("py_empty%s.pt" % tag, {}, legacy)
opt = torch.optim.Adam(torch.nn.Linear(3, 2).parameters())
save_pt("py_optim.pt", opt.state_dict())
# a state dict's data.pkl for the pickle target: after the first tensor each
# is the run of opcodes pickle.c parses without its stack (fast_tensor),
# with views, a parameter and sizes of 0 to 5 dims
base = torch.arange(40, dtype=torch.float32)
fast = collections.OrderedDict([("a", base), ("b", base[3:7]), ("c", base[:12].view(3, 4).t()),
                                ("d", torch.zeros(())), ("e", torch.zeros(1, 2, 1, 2, 1)),
                                ("p", torch.nn.Parameter(torch.ones(2)))])
buf = io.BytesIO()
torch.save(fast, buf)
with zipfile.ZipFile(buf) as z:
    pkl = [n for n in z.namelist() if n.endswith("/data.pkl")][0]
    open(path("pickle", "pt_state_dict.pkl"), "wb").write(z.read(pkl))
count += 1

# .npy: numeric, strings, objects, orders, byte orders
arrays = {
    "f4": np.arange(6, dtype="<f4").reshape(2, 3), "f8be": np.arange(6, dtype=">f8"),
    "i2": np.arange(4, dtype="<i2"), "u8": np.arange(3, dtype="<u8"), "bool": np.array([True, False]),
    "c16": np.array([1 + 2j]), "fortran": np.asfortranarray(np.arange(6, dtype="<f4").reshape(2, 3)),
    "U": np.array(["ab", "", "é✓"]), "Ube": np.array(["xy"], dtype=">U2"), "S": np.array([b"ab", b"c"]),
    "O": np.array([1, "two", [3]], dtype=object), "scalar": np.float32(1.5), "empty": np.zeros((0, 3)),
    "f2": np.arange(4, dtype="<f2"),
}
for name, a in arrays.items():
    np.save(path("npy", "np_%s.npy" % name), a, allow_pickle=True)
    count += 1
buf = io.BytesIO()
np.lib.format.write_array(buf, np.arange(3, dtype="<f4"), version=(2, 0))
open(path("npy", "np_v2.npy"), "wb").write(buf.getvalue())
count += 1
plain = {k: v for k, v in arrays.items() if k != "O"}
np.savez(path("npz", "np_plain.npz"), **plain)
np.savez_compressed(path("npz", "np_compressed.npz"), **plain)
np.savez(path("npz", "np_objects.npz"), o=arrays["O"], f=arrays["f4"])
np.savez(path("npz", "np_positional.npz"), arrays["f4"], arrays["i2"])
count += 4

# pickles of every protocol
values = [None, True, 0, -1, 255, 65536, 2 ** 31, 2 ** 64, -(2 ** 100), 1.5, float("inf"), "s", "é" * 3,
          b"bytes", bytearray(b"ba"), (), (1,), (1, 2), (1, 2, 3), [1, [2, [3]]], {"a": 1, 2: "b"},
          {1, 2}, frozenset([3]), 1 + 2j, collections.OrderedDict([("k", [1.0, 2.0])])]
shared = [1, 2]
values.append([shared, shared, {"x": shared}])
for proto in range(0, pickle.HIGHEST_PROTOCOL + 1):
    open(path("pickle", "py_values_p%d.pkl" % proto), "wb").write(pickle.dumps(values, protocol=proto))
    open(path("pickle", "py_dict_p%d.pkl" % proto), "wb").write(
        pickle.dumps({"w": [0.5] * 4, "n": 3}, protocol=proto))
    count += 2
print("make_seeds: %d PyTorch/NumPy-written seeds" % count)
