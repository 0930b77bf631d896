// Package testbroker starts a real NerveBus broker (the Node.js build in the repository's
// dist/) on 127.0.0.1 and a temporary SQLite file, for the Go client's tests.
//
// The broker is found at $NERVEBUS_BROKER_JS, or at dist/src/cli/main.js in the first parent
// directory of the working directory that has it. Build it with `npx tsc -p .` from the
// repository root (clients/go/scripts/test.sh does).
package testbroker

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Broker is a running broker process.
type Broker struct {
	// Addr is the host:port it listens on.
	Addr string

	t     testing.TB
	main  string
	dir   string
	flags []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	logs *bytes.Buffer
}

// Start starts a broker on 127.0.0.1 with a new SQLite store in a temporary directory, with
// extra serve flags (such as "--heartbeat-ms", "500"). It is stopped when the test ends; its
// log is printed when the test failed.
func Start(t testing.TB, flags ...string) *Broker {
	t.Helper()
	b := &Broker{t: t, main: brokerMain(t), dir: t.TempDir(), flags: flags, logs: &bytes.Buffer{}}
	b.start("127.0.0.1:0")
	t.Cleanup(func() {
		b.Stop()
		if t.Failed() {
			b.mu.Lock()
			t.Logf("broker log:\n%s", b.logs.String())
			b.mu.Unlock()
		}
	})
	return b
}

// Dir is the broker's data directory.
func (b *Broker) Dir() string { return b.dir }

// Pid is the running broker process's id (0 while it is stopped).
func (b *Broker) Pid() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd == nil || b.cmd.Process == nil {
		return 0
	}
	return b.cmd.Process.Pid
}

// Restart stops the broker (SIGTERM) and starts it again on the same address and store.
func (b *Broker) Restart() {
	b.t.Helper()
	b.Stop()
	b.start(b.Addr)
}

// Stop stops the broker with SIGTERM (SIGKILL after 15 s) and waits for it to exit.
func (b *Broker) Stop() {
	b.mu.Lock()
	cmd, done := b.cmd, b.done
	b.cmd = nil
	b.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Kill stops the broker at once with SIGKILL, without a graceful shutdown.
func (b *Broker) Kill() {
	b.mu.Lock()
	cmd, done := b.cmd, b.done
	b.cmd = nil
	b.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// Start starts a stopped broker again on the same address and store, retrying for a few
// seconds while the port is still taken.
func (b *Broker) Start() {
	b.t.Helper()
	b.start(b.Addr)
}

func (b *Broker) start(listen string) {
	b.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		addr, err := b.launch(listen)
		if err == nil {
			b.Addr = addr
			return
		}
		if time.Now().After(deadline) {
			b.mu.Lock()
			logs := b.logs.String()
			b.mu.Unlock()
			b.t.Fatalf("start broker: %v\nlog:\n%s", err, logs)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// lockedWriter appends to a buffer under a mutex (the broker's log, read by Stop).
type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

// Write appends p.
func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

func (b *Broker) launch(listen string) (string, error) {
	args := append([]string{b.main, "serve",
		"--listen", listen,
		// A restart on the same gRPC port must not fall back to the default HTTP port 7071,
		// which another process on the machine may hold.
		"--http-listen", "127.0.0.1:0",
		"--store", "sqlite:" + filepath.Join(b.dir, "nb.db"),
		"--log-level", "info",
		// A client that disconnects just as SIGTERM arrives can make the broker wait the
		// whole grace period (10 s by default) for a session that is already gone.
		"--shutdown-grace-ms", "1500",
	}, b.flags...)
	cmd := exec.Command("node", args...)
	// The broker dies with the test binary, even when that is killed by a timeout.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = lockedWriter{&b.mu, b.logs}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("run node: %w", err)
	}
	done := make(chan struct{})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		first := true
		for sc.Scan() {
			if first {
				lines <- sc.Text()
				first = false
			}
		}
		close(lines)
	}()
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	select {
	case line, ok := <-lines:
		const prefix = "nervebus listening on "
		if ok && strings.HasPrefix(line, prefix) {
			b.mu.Lock()
			b.cmd, b.done = cmd, done
			b.mu.Unlock()
			return strings.TrimPrefix(line, prefix), nil
		}
		_ = cmd.Process.Kill()
		<-done
		return "", fmt.Errorf("broker did not start (first line %q)", line)
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		return "", fmt.Errorf("broker did not print its address within 20 s")
	}
}

func brokerMain(t testing.TB) string {
	if p := os.Getenv("NERVEBUS_BROKER_JS"); p != "" {
		return p
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		p := filepath.Join(dir, "dist", "src", "cli", "main.js")
		if _, err := os.Stat(p); err == nil {
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("broker not built: no dist/src/cli/main.js above the working directory " +
				"(run `npx tsc -p .` in the repository root, or set NERVEBUS_BROKER_JS)")
		}
		dir = parent
	}
}
