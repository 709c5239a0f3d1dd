// A statically linked Go program for the real-program suite
// (RealProgramTests.swift): goroutines and channels, net/http over
// loopback, and os/exec with large pipes (the child's output fills a
// non-blocking pipe that Go's poller waits on edge-triggered). Prints only
// deterministic lines.
package main

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
)

func goroutines() {
	const workers, per = 16, 20000
	results := make(chan uint64, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			var s uint64
			for i := 0; i < per; i++ {
				s += uint64(w*per + i)
			}
			results <- s
		}(w)
	}
	wg.Wait()
	close(results)
	var total uint64
	for s := range results {
		total += s
	}
	var mu sync.Mutex
	counter := 0
	var wg2 sync.WaitGroup
	for i := 0; i < 100; i++ {
		wg2.Add(1)
		go func() {
			defer wg2.Done()
			for j := 0; j < 1000; j++ {
				mu.Lock()
				counter++
				mu.Unlock()
			}
		}()
	}
	wg2.Wait()
	fmt.Printf("goroutines: sum %d counter %d\n", total, counter)
}

func httpLoopback() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("listen:", err)
		os.Exit(1)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/echo/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s", strings.TrimPrefix(r.URL.Path, "/echo/"))
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		w.Write(bytes.Repeat([]byte("0123456789abcdef"), 1<<16)) // 1 MiB
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	base := "http://" + ln.Addr().String()
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for c := 0; c < 8; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				resp, err := http.Get(fmt.Sprintf("%s/echo/%d-%d", base, c, i))
				if err != nil {
					fmt.Println("get:", err)
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(body) == fmt.Sprintf("hello %d-%d", c, i) {
					mu.Lock()
					ok++
					mu.Unlock()
				}
			}
		}(c)
	}
	wg.Wait()
	resp, err := http.Get(base + "/big")
	if err != nil {
		fmt.Println("get big:", err)
		os.Exit(1)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	srv.Close()
	fmt.Printf("http: %d of 200 requests ok, big body %d bytes sha256 %x\n", ok, len(body), sha256.Sum256(body))
}

func execChildren() {
	out, err := exec.Command("/bin/echo", "from a child").Output()
	fmt.Printf("exec echo: %q %v\n", out, err)
	// A child writing 4 MiB: more than a pipe holds, read by the poller.
	big, err := exec.Command("/bin/sh", "-c", "head -c 4194304 /dev/zero | tr '\\0' x").Output()
	fmt.Printf("exec big: %d bytes %v\n", len(big), err)
	// Feeding a child 2 MiB on stdin while reading its stdout.
	cmd := exec.Command("/usr/bin/sha256sum")
	cmd.Stdin = bytes.NewReader(bytes.Repeat([]byte("y"), 2<<20))
	sum, err := cmd.Output()
	fmt.Printf("exec stdin: %s %v\n", strings.Fields(string(sum))[0], err)
	// Many short children in parallel.
	var wg sync.WaitGroup
	codes := make([]int, 20)
	for i := range codes {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			err := exec.Command("/bin/sh", "-c", fmt.Sprintf("exit %d", i%4)).Run()
			if e, ok := err.(*exec.ExitError); ok {
				codes[i] = e.ExitCode()
			}
		}(i)
	}
	wg.Wait()
	fmt.Printf("exec parallel: %v\n", codes)
}

func main() {
	goroutines()
	httpLoopback()
	execChildren()
}
