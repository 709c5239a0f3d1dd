# OpenJDK 17: javac, then a program with a thread pool, synchronized
# counters, and a child process whose output it reads.
set -eu
mkdir -p /tmp/j && cd /tmp/j
cat > Main.java <<'JAVA'
import java.io.*;
import java.util.*;
import java.util.concurrent.*;
import java.util.concurrent.atomic.*;

public class Main {
    public static void main(String[] args) throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(8);
        List<Future<Long>> parts = new ArrayList<>();
        for (int w = 0; w < 16; w++) {
            final int base = w * 100000;
            parts.add(pool.submit(() -> { long s = 0; for (int i = 0; i < 100000; i++) s += (long) (base + i) * 3; return s; }));
        }
        long total = 0;
        for (Future<Long> f : parts) total += f.get();
        AtomicLong atomic = new AtomicLong();
        CountDownLatch done = new CountDownLatch(32);
        for (int t = 0; t < 32; t++) pool.execute(() -> { for (int i = 0; i < 10000; i++) atomic.incrementAndGet(); done.countDown(); });
        done.await();
        pool.shutdown();
        pool.awaitTermination(60, TimeUnit.SECONDS);
        System.out.println("threads: sum " + total + " atomic " + atomic.get());
        Process p = new ProcessBuilder("/bin/sh", "-c", "echo from a child; head -c 1000000 /dev/zero | wc -c; exit 7").redirectErrorStream(true).start();
        BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream()));
        String line;
        while ((line = r.readLine()) != null) System.out.println("child: " + line.trim());
        System.out.println("child exit: " + p.waitFor());
        Map<String, Integer> words = new TreeMap<>();
        for (String s : "the quick brown fox jumps over the lazy dog the end".split(" ")) words.merge(s, 1, Integer::sum);
        System.out.println("words: " + words);
    }
}
JAVA
javac -d . Main.java && echo "javac: ok"
java -Xmx256m -XX:+UseSerialGC -cp . Main
