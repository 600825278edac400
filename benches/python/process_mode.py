# The process-mode scenario of benches/process.rs for the Python original, for the
# side-by-side figure: `pip install concurry==0.13.2 && python3 benches/python/process_mode.py`.
import time
from concurry import Worker

class Echo(Worker):
    def __init__(self):
        pass
    def add(self, x):
        return x + 1

if __name__ == "__main__":
    w = Echo.options(mode="process", max_workers=1).init()
    w.add(1).result()
    n = 2000
    t = time.perf_counter()
    for i in range(n):
        w.add(i).result()
    rt = (time.perf_counter() - t) / n
    n = 10000
    t = time.perf_counter()
    fs = [w.add(i) for i in range(n)]
    for f in fs:
        f.result()
    pl = n / (time.perf_counter() - t)
    print(f"python concurry 0.13.2 process mode: round trip {rt*1e6:.1f} us ({1/rt:.0f}/s), pipelined {pl:.0f} calls/s")
    w.stop()
