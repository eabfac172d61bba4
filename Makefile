# Developer shortcuts; the README's quickstart goes through scripts/quickstart.sh.
.PHONY: run test build deps debug asan asan-test clean
run:
	bash scripts/quickstart.sh run
test:
	bash scripts/quickstart.sh test
deps:
	bash scripts/install-deps.sh
build:
	cmake --preset release && cmake --build --preset release
debug:
	cmake --preset debug && cmake --build --preset debug
asan:
	cmake --preset asan && cmake --build --preset asan
asan-test: asan
	ctest --preset asan -j 2
clean:
	rm -rf build
