package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is a whole benchmark run: what ran where, the results and the
// targets they were held to. It is what results.json holds.
type Report struct {
	Command   string    `json:"command"`
	Started   time.Time `json:"started"`
	DurationS float64   `json:"duration_s"`
	Machine   Machine   `json:"machine"`
	// Processes says whether components ran as child processes (one per
	// NATS server, orchestrator, worker replica, baseline service) or all
	// in one process.
	Processes bool     `json:"processes"`
	Results   []Result `json:"results"`
	Targets   []Target `json:"targets"`
}

// Machine describes where the benchmark ran.
type Machine struct {
	GoVersion string `json:"go"`
	OS        string `json:"os"`
	Arch      string `json:"arch"`
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model,omitempty"`
}

// ThisMachine describes the machine this process runs on.
func ThisMachine() Machine {
	m := Machine{GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

// WriteJSON writes rep as indented JSON.
func (rep Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// WriteTable prints the results as an aligned table, then the targets.
func (rep Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\treq/s\tp50 ms\tp90 ms\tp99 ms\tmax ms\tovh p50\tovh p99\terrors\tfront RSS MB\tserver CPU µs/req\tother load\t")
	group := ""
	for _, r := range rep.Results {
		if r.Group != group && group != "" {
			fmt.Fprintln(tw, "\t\t\t\t\t\t\t\t\t\t\t\t")
		}
		group = r.Group
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%.0f%%\t\n",
			r.Name, num(r.RPS), num(r.Latency.P50), num(r.Latency.P90), num(r.Latency.P99), num(r.Latency.Max),
			num(r.Overhead.P50), num(r.Overhead.P99), r.Errors, opt(r.FrontRSSMB), cpuCell(r), 100*r.OthersBusy)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(rep.Targets) > 0 {
		fmt.Fprintln(w)
		for _, t := range rep.Targets {
			fmt.Fprintln(w, t)
		}
	}
	for _, r := range rep.Results {
		if r.ErrorSample != "" {
			fmt.Fprintf(w, "\n%s: %d errors, first: %s", r.Name, r.Errors, r.ErrorSample)
		}
	}
	return nil
}

// WriteMarkdown writes the results as a Markdown table, then the targets as
// a list, for the README.
func (rep Report) WriteMarkdown(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintln(bw, "| scenario | system | clients | req/s | p50 ms | p90 ms | p99 ms | max ms | overhead p50 | overhead p99 | errors | front peak RSS MB | server CPU µs/req | other load |")
	fmt.Fprintln(bw, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
	for _, r := range rep.Results {
		what := r.Group
		switch r.Group {
		case GroupZero:
			what = "zero work, " + r.Image
		case GroupLong:
			what = fmt.Sprintf("three %s tasks", fmtDur(r.WorkMS))
		case GroupReplicas:
			what = fmt.Sprintf("%s tasks, %d replica%s", fmtDur(r.WorkMS), r.Replicas, plural(r.Replicas))
		}
		clients := fmt.Sprint(r.Clients)
		if r.Rate > 0 {
			clients += fmt.Sprintf(" paced %g/s", r.Rate)
		}
		fmt.Fprintf(bw, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d | %s | %s | %.0f%% |\n",
			what, r.System, clients, num(r.RPS), num(r.Latency.P50), num(r.Latency.P90), num(r.Latency.P99), num(r.Latency.Max),
			num(r.Overhead.P50), num(r.Overhead.P99), r.Errors, opt(r.FrontRSSMB), cpuCell(r), 100*r.OthersBusy)
	}
	if len(rep.Targets) > 0 {
		fmt.Fprintln(bw)
		for _, t := range rep.Targets {
			fmt.Fprintf(bw, "- %s\n", t)
		}
	}
	return bw.Flush()
}

// num formats a figure with about three significant digits.
func num(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v < 1:
		return fmt.Sprintf("%.3f", v)
	case v < 10:
		return fmt.Sprintf("%.2f", v)
	case v < 100:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}

// cpuCell formats the server CPU per request, or "-" where it means little:
// a run of a few long requests holds too few 10 ms CPU ticks.
func cpuCell(r Result) string {
	if r.OK < 20 {
		return "-"
	}
	return opt(r.ServerCPUPerReq)
}

// opt formats a figure that may be unknown (zero).
func opt(v float64) string {
	if v == 0 {
		return "-"
	}
	return num(v)
}

// progressLine is the one-line summary printed as a scenario ends.
func progressLine(r Result) string {
	s := fmt.Sprintf("%-34s %8s req/s  p50 %7s ms  p99 %7s ms  overhead p50 %6s p99 %6s ms  errors %d",
		r.Name, num(r.RPS), num(r.Latency.P50), num(r.Latency.P99), num(r.Overhead.P50), num(r.Overhead.P99), r.Errors)
	if r.ErrorSample != "" {
		s += " (" + r.ErrorSample + ")"
	}
	return s
}
