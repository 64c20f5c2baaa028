// Go peer of taskscope-bench (standard library only).
//
// Prints one line per figure, exactly `NAME: VALUE UNIT`; lines starting with '#' are notes.
//
//	spawn_join_ns  go func + join over an unbuffered channel, ns per iteration, at the default
//	               GOMAXPROCS (also printed at GOMAXPROCS=1 as spawn_join_p1_ns)
//	switch_ns      ping-pong between two goroutines over two unbuffered channels at
//	               GOMAXPROCS=1, ns per handoff (one goroutine handing control to the other);
//	               at the default GOMAXPROCS as switch_pn_ns, which measures cross-thread
//	               wake-ups rather than a switch
//	pending_bytes  RSS growth per goroutine for N goroutines blocked on one channel
//	               (runtime.MemStats.Sys growth per goroutine as pending_sys_bytes)
//	pending_tasks  that N
//
// Flags: --quick (smaller N), --only NAME (one figure).
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"
)

func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

func emit(name string, value float64, unit string) {
	fmt.Printf("%s: %.1f %s\n", name, value, unit)
}

func spawnJoin(n, runs int) float64 {
	best := -1.0
	done := make(chan struct{})
	for r := 0; r < runs; r++ {
		t0 := time.Now()
		for i := 0; i < n; i++ {
			go func() { done <- struct{}{} }()
			<-done
		}
		dt := float64(time.Since(t0).Nanoseconds()) / float64(n)
		if best < 0 || dt < best {
			best = dt
		}
	}
	return best
}

// n round trips = 2n switches: main sends on ping and waits on pong; the other goroutine waits
// on ping and sends on pong.
func switchBench(n, runs int) float64 {
	best := -1.0
	for r := 0; r < runs; r++ {
		ping, pong := make(chan struct{}), make(chan struct{})
		go func() {
			for i := 0; i < n; i++ {
				<-ping
				pong <- struct{}{}
			}
		}()
		t0 := time.Now()
		for i := 0; i < n; i++ {
			ping <- struct{}{}
			<-pong
		}
		dt := float64(time.Since(t0).Nanoseconds()) / float64(2*n)
		if best < 0 || dt < best {
			best = dt
		}
	}
	return best
}

func pending(n int) (rssPer, sysPer float64) {
	never := make(chan struct{})
	var started, finished sync.WaitGroup
	started.Add(n)
	finished.Add(n)
	runtime.GC()
	debug.FreeOSMemory()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	before := rssBytes()
	for i := 0; i < n; i++ {
		go func() {
			started.Done()
			<-never
			finished.Done()
		}()
	}
	started.Wait()
	time.Sleep(20 * time.Millisecond) // let the last ones reach the receive
	runtime.GC()
	after := rssBytes()
	runtime.ReadMemStats(&ms1)
	close(never)
	finished.Wait()
	return float64(after-before) / float64(n), float64(ms1.Sys-ms0.Sys) / float64(n)
}

func main() {
	quick := flag.Bool("quick", false, "fewer iterations")
	only := flag.String("only", "", "run one figure")
	flag.Parse()
	want := func(name string) bool { return *only == "" || *only == name }

	nSpawn, nSwitch, nPending, runs := 300000, 500000, 100000, 3
	if *quick {
		nSpawn, nSwitch, nPending, runs = 50000, 100000, 100000, 3
	}
	procs := runtime.GOMAXPROCS(0)
	fmt.Printf("# %s GOMAXPROCS=%d NumCPU=%d\n", runtime.Version(), procs, runtime.NumCPU())

	if want("spawn_join_ns") {
		emit("spawn_join_ns", spawnJoin(nSpawn, runs), "ns")
		runtime.GOMAXPROCS(1)
		emit("spawn_join_p1_ns", spawnJoin(nSpawn, runs), "ns")
		runtime.GOMAXPROCS(procs)
	}
	if want("switch_ns") {
		runtime.GOMAXPROCS(1)
		emit("switch_ns", switchBench(nSwitch, runs), "ns")
		runtime.GOMAXPROCS(procs)
		if procs > 1 {
			emit("switch_pn_ns", switchBench(nSwitch/10, runs), "ns")
		}
	}
	if want("pending_bytes") {
		rssPer, sysPer := pending(nPending)
		emit("pending_bytes", rssPer, "bytes")
		emit("pending_sys_bytes", sysPer, "bytes")
		fmt.Printf("pending_tasks: %d count\n", nPending)
	}
}
