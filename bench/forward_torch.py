#!/usr/bin/python3
# The PyTorch side of `make bench`'s forward rows: builds a model with a fixed
# seed, writes its state dict and input (so ltorch runs the same weights on
# the same input), and times its forward in eval mode under no_grad.
#   forward_torch.py CASE FIXTURE REPS  -> prints "seconds"
# Cases: resnet18, mobilenet_v2 (1x3x224x224), transformer (2-layer encoder,
# d_model 256, 4 heads, batch 4 x 128 tokens), lstm (2 layers, 128 -> 256,
# batch 8 x 64 steps).
import sys, time, statistics, torch, torchvision

case, fixture, reps = sys.argv[1], sys.argv[2], int(sys.argv[3])
torch.manual_seed(0)
if case == 'resnet18':
    m, x = torchvision.models.resnet18(), torch.randn(1, 3, 224, 224)
elif case == 'mobilenet_v2':
    m, x = torchvision.models.mobilenet_v2(), torch.randn(1, 3, 224, 224)
elif case == 'transformer':
    layer = torch.nn.TransformerEncoderLayer(256, 4, dim_feedforward=1024, dropout=0.0, batch_first=True)
    m, x = torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False), torch.randn(4, 128, 256)
elif case == 'lstm':
    m, x = torch.nn.LSTM(128, 256, num_layers=2, batch_first=True), torch.randn(8, 64, 128)
else:
    sys.exit('unknown case ' + case)
m.eval()
torch.save({'state_dict': m.state_dict(), 'input': x}, fixture)
ts = []
with torch.no_grad():
    for i in range(reps + 2):
        t0 = time.perf_counter()
        m(x)
        if i >= 2:
            ts.append(time.perf_counter() - t0)
print(statistics.median(ts))
