package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"regexp"
	"testing"
	"time"

	"github.com/nervebus/nervebus/clients/go/internal/testbroker"
)

// TestMain lets the test binary act as the quickstart program itself, so that the test runs
// the real main (flags, environment, exit status) without building it separately.
func TestMain(m *testing.M) {
	if os.Getenv("QUICKSTART_RUN_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestQuickstartAgainstBroker(t *testing.T) {
	b := testbroker.Start(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for run := 1; run <= 2; run++ { // the second run finds the subscription in place
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		cmd := exec.CommandContext(ctx, self, "-n", "4")
		cmd.Env = append(os.Environ(), "QUICKSTART_RUN_MAIN=1", "NERVEBUS_ADDR="+b.Addr)
		var out bytes.Buffer
		cmd.Stdout = &out
		cmd.Stderr = &out
		err := cmd.Run()
		cancel()
		if err != nil {
			t.Fatalf("run %d: quickstart failed: %v\n%s", run, err, out.String())
		}
		text := out.String()
		if n := len(regexp.MustCompile(`(?m)^published seq \d+ \(trace [0-9a-f]{32}\)$`).FindAllString(text, -1)); n != 4 {
			t.Fatalf("run %d: %d published lines, want 4:\n%s", run, n, text)
		}
		received := regexp.MustCompile(`(?m)^received seq \d+: hello \d$`).FindAllString(text, -1)
		if len(received) != 4 {
			t.Fatalf("run %d: %d received lines, want 4:\n%s", run, len(received), text)
		}
	}
}

// The README's first Go example must be this program, verbatim: it is what a user pastes as
// main.go into a module of their own (test/packaging builds and runs it that way).
func TestReadmeShowsQuickstart(t *testing.T) {
	src, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```go\n(.*?)```").FindSubmatch(readme)
	if m == nil {
		t.Fatal("README.md has no ```go block")
	}
	if string(m[1]) != string(src) {
		t.Fatalf("README.md's first ```go block is not examples/quickstart/main.go verbatim:\n%s", m[1])
	}
}
