package bench

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Main is the benchmark command (test/bench): it runs the suite, prints the
// table, and writes results.json and chart.svg to -out. When args start
// with ChildCommand it runs one component instead (see RunChild).
func Main(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) > 0 && args[0] == ChildCommand {
		return RunChild(ctx, args[1:], getenv, stdout)
	}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	quick := fs.Bool("quick", false, "a reduced suite for CI smoke runs (well under a minute); writes no files unless -out is given")
	out := fs.String("out", "", `directory for results.json and chart.svg (default "docs/bench"; none with -quick)`)
	inProcess := fs.Bool("inprocess", false, "run every component in this process instead of one child process each")
	duration := fs.Duration("duration", 0, "measured time per scenario, split into its rounds (default 6s in 3 rounds; 1s with -quick)")
	replot := fs.String("replot", "", "run nothing: read this results.json, print its table and redraw its chart (in -out, default beside it)")
	markdown := fs.Bool("markdown", false, "print the table as Markdown (for the README)")
	run := fs.String("run", "", "only the scenarios whose name matches this regexp, e.g. 'zero/20KB'")
	profile := fs.String("profile", "", "write CPU and heap profiles of the scenarios matching this regexp to -logs")
	logs := fs.String("logs", "", "directory for the components' logs and profiles (default: a temporary one, kept if anything fails)")
	logLevel := fs.String("log-level", "warn", "components' log level")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *replot != "" {
		return replotReport(*replot, *out, *markdown, stdout)
	}
	plan := FullPlan()
	if *quick {
		plan = QuickPlan()
	}
	if *duration > 0 {
		plan.Duration = *duration
	}
	outDir := *out
	if outDir == "" && !*quick && !isSet(fs, "out") {
		outDir = filepath.Join("docs", "bench")
	}
	scenarios := plan.Scenarios()
	if *run != "" {
		re, err := regexp.Compile(*run)
		if err != nil {
			return fmt.Errorf("-run: %w", err)
		}
		var keep []Scenario
		for _, s := range scenarios {
			if re.MatchString(s.Name) {
				keep = append(keep, s)
			}
		}
		scenarios = keep
	}
	opts := Options{Dir: *logs, LogLevel: *logLevel, Progress: stdout}
	if !*inProcess {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("bench: find own executable: %w", err)
		}
		opts.Exe = exe
	}
	if *profile != "" {
		re, err := regexp.Compile(*profile)
		if err != nil {
			return fmt.Errorf("-profile: %w", err)
		}
		opts.Profile = re
		if opts.Dir == "" {
			opts.Dir = "bench-profiles"
		}
	}

	r, err := NewRunner(opts)
	if err != nil {
		return err
	}
	rep := Report{
		Command:   "go run ./test/bench " + strings.Join(args, " "),
		Started:   time.Now().UTC().Truncate(time.Second),
		Machine:   ThisMachine(),
		Processes: !*inProcess,
	}
	fmt.Fprintf(stdout, "%d scenarios, components in %s; logs in %s\n", len(scenarios), map[bool]string{true: "child processes", false: "this process"}[!*inProcess], r.Dir())
	results, runErr := r.Run(ctx, scenarios)
	if err := r.Close(); err != nil && runErr == nil {
		runErr = fmt.Errorf("stop: %w", err)
	}
	rep.DurationS = time.Since(rep.Started).Round(time.Second).Seconds()
	rep.Results = results
	rep.Targets = Targets(results)

	fmt.Fprintln(stdout)
	table := rep.WriteTable
	if *markdown {
		table = rep.WriteMarkdown
	}
	if err := table(stdout); err != nil {
		return err
	}
	if outDir != "" && len(results) > 0 {
		if err := rep.writeFiles(outDir); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "\nwrote %s and %s\n", filepath.Join(outDir, "results.json"), filepath.Join(outDir, "chart.svg"))
	}
	if runErr != nil {
		return runErr
	}
	var failed []string
	for _, res := range results {
		if res.Errors > 0 {
			failed = append(failed, res.Name)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("bench: errors in %s (logs in %s)", strings.Join(failed, ", "), r.Dir())
	}
	return nil
}

// replotReport prints the table of a results.json and redraws its chart.
func replotReport(path, outDir string, markdown bool, stdout io.Writer) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var rep Report
	if err := json.Unmarshal(b, &rep); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	rep.Targets = Targets(rep.Results)
	table := rep.WriteTable
	if markdown {
		table = rep.WriteMarkdown
	}
	if err := table(stdout); err != nil {
		return err
	}
	if outDir == "" {
		outDir = filepath.Dir(path)
	}
	f, err := os.Create(filepath.Join(outDir, "chart.svg"))
	if err != nil {
		return err
	}
	if err := rep.WriteSVG(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (rep Report) writeFiles(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	write := func(name string, fn func(io.Writer) error) error {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		if err := fn(f); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	if err := write("results.json", rep.WriteJSON); err != nil {
		return err
	}
	return write("chart.svg", rep.WriteSVG)
}

func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
