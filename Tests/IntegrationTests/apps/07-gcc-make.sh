# gcc and make build a multi-file C program (parallel make, a static
# library, dependency tracking), run it, and rebuild after a change.
set -eu
mkdir -p /tmp/c/src && cd /tmp/c
cat > src/util.h <<'C'
long fib(int n);
long sum_to(long n);
const char *greeting(void);
C
cat > src/fib.c <<'C'
#include "util.h"
long fib(int n) { long a = 0, b = 1; for (int i = 0; i < n; i++) { long t = a + b; a = b; b = t; } return a; }
C
cat > src/sum.c <<'C'
#include "util.h"
long sum_to(long n) { long s = 0; for (long i = 1; i <= n; i++) s += i; return s; }
C
cat > src/greet.c <<'C'
#include "util.h"
const char *greeting(void) { return "hello from make"; }
C
cat > src/main.c <<'C'
#include <stdio.h>
#include "util.h"
int main(void) { printf("%s: fib(50)=%ld sum=%ld\n", greeting(), fib(50), sum_to(1000000)); return 0; }
C
cat > Makefile <<'MK'
CFLAGS = -O2 -Wall -MMD
OBJS = build/fib.o build/sum.o build/greet.o
prog: build/main.o build/libutil.a
	$(CC) -o $@ build/main.o build/libutil.a
build/libutil.a: $(OBJS)
	ar rcs $@ $^
build/%.o: src/%.c | build
	$(CC) $(CFLAGS) -c -o $@ $<
build:
	mkdir -p build
-include build/*.d
clean:
	rm -rf build prog
MK
make -j2 -s && ./prog
ls build | sort | tr '\n' ' '; echo
make -s && echo "nothing to do: $(make -q && echo yes || echo no)"
sleep 1; sed -i 's/hello from make/hello again/' src/greet.c
make -s && ./prog
make -s clean && ls
