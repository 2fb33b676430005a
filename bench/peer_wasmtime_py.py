"""The same calls from Python through the `wasmtime` package (PyPI), for `make bench`.

A fresh instance per call (instantiate, look up, call) and a warm one (one instance, called
again). Prints `name fresh_ns warm_ns` lines; `-` where a case was not measured.
"""
import os
import sys
import time

from wasmtime import Engine, Module, Store, Linker as CoreLinker
from wasmtime.component import Component, Linker

ROOT = os.path.join(os.path.dirname(__file__), "..")


class User:
    def __init__(self, i):
        self.id = i
        self.name = f"user{i}"
        self.tags = ["admin", "dev"]
        self.active = i % 2 == 0


def measure(f, n):
    for _ in range(max(3, n // 100)):
        f()
    best = None
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(n):
            f()
        t = (time.perf_counter() - start) / n * 1e9
        best = t if best is None else min(best, t)
    return best


def main():
    engine = Engine()
    # Core answer.
    module = Module.from_file(engine, os.path.join(ROOT, "examples/app/wasm/answer_raw.wasm"))
    linker = CoreLinker(engine)

    def answer_fresh():
        store = Store(engine)
        inst = linker.instantiate(store, module)
        assert inst.exports(store)["answer"](store) == 42

    store = Store(engine)
    inst = linker.instantiate(store, module)
    answer = inst.exports(store)["answer"]

    def answer_warm():
        assert answer(store) == 42

    print(f"answer {measure(answer_fresh, 2000):.0f} {measure(answer_warm, 20000):.0f}")

    # `host` defines the component's imports on the linker; without it they trap.
    def component_case(path, export, args, check, n_fresh, n_warm, host=None):
        component = Component.from_file(engine, os.path.join(ROOT, path))
        clinker = Linker(engine)
        if host:
            host(clinker)
        clinker.define_unknown_imports_as_traps(component)

        def fresh():
            store = Store(engine)
            inst = clinker.instantiate(store, component)
            f = inst.get_func(store, export)
            out = f(store, *args)
            f.post_return(store)
            check(out)

        wstore = Store(engine)
        winst = clinker.instantiate(wstore, component)
        wf = winst.get_func(wstore, export)

        def warm():
            out = wf(wstore, *args)
            wf.post_return(wstore)
            check(out)

        return measure(fresh, n_fresh), measure(warm, n_warm)

    def eq(want):
        def check(got):
            assert got == want, (got, want)
        return check

    f, w = component_case("examples/app/wasm/minimal.wasm", "compute", (6, 7), eq(42), 1000, 20000)
    print(f"compute {f:.0f} {w:.0f}")

    # host-call: compute-using-host calls the import test:minimal/host@0.1.0#add, here a
    # Python function (wasmtime passes the store first), once per call.
    adds = [0]

    def add(_store, a, b):
        adds[0] += 1
        return a + b

    def minimal_host(clinker):
        with clinker.root() as root:
            with root.add_instance("test:minimal/host@0.1.0") as host:
                host.add_func("add", add)

    f, w = component_case("examples/app/wasm/minimal.wasm", "compute-using-host", (6, 7), eq(13),
                          1000, 20000, minimal_host)
    assert adds[0] > 0
    print(f"host-call {f:.0f} {w:.0f}")
    kib = "x" * 1024
    f, w = component_case("spec/fixtures/strings.wasm", "echo", (kib,), eq(kib), 1000, 20000)
    print(f"echo-1k {f:.0f} {w:.0f}")
    for n, iters in ((10, 500), (100, 100), (1000, 10)):
        users = [User(i) for i in range(1, n + 1)]
        f, w = component_case("examples/app/wasm/mapper.wasm", "transform-users", (users,),
                              lambda out, n=n: len(out) == n or sys.exit("bad"), iters, iters)
        print(f"transform-users-{n} {f:.0f} {w:.0f}")


main()
