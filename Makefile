# The two commands of the README: `make demo` and `make test`.
.PHONY: demo test build bench clean

demo:
	scripts/demo.sh

test:
	scripts/test.sh

build:
	scripts/build.sh lua5.4

bench:
	scripts/bench.sh

clean:
	rm -rf build target
