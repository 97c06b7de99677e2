import sys, time, os, statistics
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import torch
from resnet9 import SimCLR, nt_xent

def main():
    threads = int(os.environ.get("THREADS", "2"))
    torch.set_num_threads(threads)
    fmt = os.environ.get("FMT", "contiguous")
    mf = torch.channels_last if fmt == "channels_last" else torch.contiguous_format
    torch.manual_seed(0)
    m = SimCLR().to(memory_format=mf)
    opt = torch.optim.Adam(m.parameters(), lr=1e-3, weight_decay=1e-6)
    x = torch.randn(512, 3, 32, 32).to(memory_format=mf)
    def step():
        opt.zero_grad()
        loss = nt_xent(m(x), 0.5)
        loss.backward()
        opt.step()
    for _ in range(2): step()
    ts = []
    for _ in range(5):
        t = time.perf_counter(); step(); ts.append(time.perf_counter() - t)
    print("train step median %.3f s  -> %.0f views/s" % (statistics.median(ts), 512 / statistics.median(ts)))
    m.eval()
    xe = torch.randn(256, 3, 32, 32).to(memory_format=mf)
    with torch.no_grad():
        for _ in range(2): m.encoder(xe, taps={})
        ts = []
        for _ in range(7):
            t = time.perf_counter(); taps = {}; m.encoder(xe, taps=taps); ts.append(time.perf_counter() - t)
    print("eval fwd median %.4f s -> %.0f img/s" % (statistics.median(ts), 256 / statistics.median(ts)))

main()
