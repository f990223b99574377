#!/usr/bin/python3
# The PyTorch side of `make bench`: makes the benchmark files, and times one
# operation in this (fresh) process: prints "seconds peak_rss_bytes".
#   torch_side.py make DIR
#   torch_side.py load FILE | save FILE OUT | loadsum FILE | sum | cast | write FILE OUT
import os, sys, time, resource

def peak():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) * 1024
    return 0

def rss():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) * 1024
    return 0

# Before its timer each case touches and frees memory (twice the file and
# 64 MiB, or 512 MiB), then resets the peak: this VM gives freed pages back
# to its host after ~2 s, and pages the host must back again cost several
# times what the kernel's zeroing does, so a fresh process after a pause
# (or after PyTorch's second of imports) met colder memory than one right
# after another. The memory is advised for huge pages, so that what it frees
# serves huge-page and 4 KiB allocations alike. The same in
# bench/ltorch_side.lua.
def warm(nbytes):
    import mmap
    m = mmap.mmap(-1, nbytes)
    if hasattr(mmap, 'MADV_HUGEPAGE'):
        m.madvise(mmap.MADV_HUGEPAGE)
    for off in range(0, nbytes, 4096):
        m[off] = 1
    m.close()
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')

def warm_for(path):
    warm(2 * os.path.getsize(path) + (64 << 20))

cmd = sys.argv[1]
if cmd == 'write':
    # the floor of a save: FILE's bytes, read untimed into huge-page memory,
    # written to a new file OUT with its blocks preallocated, a write per
    # 9 MiB (what a save's big records cost the kernel, with no format work)
    import mmap
    n = os.path.getsize(sys.argv[2])
    buf = mmap.mmap(-1, max(n, 1))
    if hasattr(mmap, 'MADV_HUGEPAGE'):
        buf.madvise(mmap.MADV_HUGEPAGE)
    with open(sys.argv[2], 'rb') as f:
        f.readinto(buf)
    warm_for(sys.argv[2])
    view = memoryview(buf)[:n]
    t0 = time.perf_counter()
    fd = os.open(sys.argv[3], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.posix_fallocate(fd, 0, max(n, 1))
    off = 0
    while off < n:
        off += os.write(fd, view[off:off + (9 << 20)])
    os.close(fd)
    t1 = time.perf_counter()
    print(t1 - t0, 0)
    sys.exit(0)

import torch

if cmd == 'make':
    d = sys.argv[2]
    os.makedirs(d, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    big = {f'layer{i}.weight': torch.randn(1024, 1024, generator=g) for i in range(64)}
    torch.save(big, os.path.join(d, 'big.pt'))           # 64 x 4 MiB = 256 MiB
    small = {f'block{i // 100}.p{i % 100}': torch.randn(16, generator=g) for i in range(20000)}
    torch.save(small, os.path.join(d, 'small.pt'))       # 20,000 small tensors
    import torchvision
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18().state_dict(), os.path.join(d, 'resnet18.pt'))
elif cmd == 'load':
    warm_for(sys.argv[2])
    base = rss()
    t0 = time.perf_counter()
    sd = torch.load(sys.argv[2])
    t1 = time.perf_counter()
    print(t1 - t0, peak() - base)
elif cmd == 'save':
    sd = torch.load(sys.argv[2])
    warm_for(sys.argv[2])
    base = rss()
    t0 = time.perf_counter()
    torch.save(sd, sys.argv[3])
    t1 = time.perf_counter()
    print(t1 - t0, max(0, peak() - base))
elif cmd == 'loadsum':
    warm_for(sys.argv[2])
    base = rss()
    t0 = time.perf_counter()
    sd = torch.load(sys.argv[2])
    total = 0.0
    for t in sd.values():
        total += t.sum().item()
    t1 = time.perf_counter()
    print(t1 - t0, peak() - base)
elif cmd in ('sum', 'cast'):
    x = torch.randn(64 * 1024 * 1024)
    op = (lambda: x.sum()) if cmd == 'sum' else (lambda: x.to(torch.bfloat16))
    op()
    warm(512 << 20)
    base = rss()
    t0 = time.perf_counter()
    r = op()
    t1 = time.perf_counter()
    print(t1 - t0, max(0, peak() - base))
