package bench

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Process counters from /proc (Linux). Where /proc is missing the readers
// return zeros and the report leaves those columns out.

// clockTick is the kernel's USER_HZ, the unit of /proc CPU times; it is 100
// on every Linux architecture Go supports.
const clockTick = 100

// cpuTicks returns the user+system CPU time of process pid (all its
// threads) in clock ticks; pid 0 means this process.
func cpuTicks(pid int) int64 {
	b, err := os.ReadFile(procPath(pid, "stat"))
	if err != nil {
		return 0
	}
	// The command name, in parentheses, may hold spaces: fields are
	// counted from after its closing parenthesis, where field 3 begins.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, _ := strconv.ParseInt(f[12], 10, 64) // field 15
	return utime + stime
}

// machineTicks returns the busy and total CPU time of the machine, all CPUs
// together, in clock ticks.
func machineTicks() (busy, total int64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0
	}
	// user nice system idle iowait irq softirq steal
	for i, s := range f[1:9] {
		v, _ := strconv.ParseInt(s, 10, 64)
		total += v
		if i != 3 && i != 4 {
			busy += v
		}
	}
	return busy, total
}

// peakRSS returns the peak resident set size of process pid in bytes
// (VmHWM); pid 0 means this process.
func peakRSS(pid int) int64 {
	b, err := os.ReadFile(procPath(pid, "status"))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// resetPeakRSS sets process pid's VmHWM back to its current RSS, so that
// the next peakRSS is the peak since now.
func resetPeakRSS(pid int) error {
	return os.WriteFile(procPath(pid, "clear_refs"), []byte("5"), 0)
}

func procPath(pid int, name string) string {
	if pid == 0 {
		return "/proc/self/" + name
	}
	return fmt.Sprintf("/proc/%d/%s", pid, name)
}
