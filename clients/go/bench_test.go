package nervebus_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	nervebus "github.com/nervebus/nervebus/clients/go"
	"github.com/nervebus/nervebus/clients/go/internal/testbroker"
)

// BenchmarkPublishReceive publishes b.N messages through one Publisher with its defaults, then
// receives and acks them with one Subscriber (a handler that acks at once), against a broker on
// SQLite. Run it with a fixed count (scripts/bench.sh: -benchtime 200000x); besides ns/op it
// reports each phase's msg/s and CPU µs per message of this process and of the broker.
func BenchmarkPublishReceive(b *testing.B) {
	for _, size := range []int{100, 1024} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) { benchPublishReceive(b, size) })
	}
}

// cpuSeconds is this process's CPU time so far (every thread, user and system).
func cpuSeconds(b *testing.B) float64 {
	var u syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &u); err != nil {
		b.Fatal(err)
	}
	return float64(u.Utime.Nano()+u.Stime.Nano()) / 1e9
}

// processCPUSeconds is process pid's CPU time so far, from /proc/PID/stat.
func processCPUSeconds(b *testing.B, pid int) float64 {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	return (utime + stime) / 100 // USER_HZ
}

// phase runs fn and reports its msg/s and the CPU µs per message of this process and the broker.
func phase(b *testing.B, name string, pid int, fn func()) {
	c0, b0, t0 := cpuSeconds(b), processCPUSeconds(b, pid), time.Now()
	fn()
	seconds := time.Since(t0).Seconds()
	n := float64(b.N)
	b.ReportMetric(n/seconds, name+"-msg/s")
	b.ReportMetric((cpuSeconds(b)-c0)*1e6/n, name+"-client-µs/msg")
	b.ReportMetric((processCPUSeconds(b, pid)-b0)*1e6/n, name+"-broker-µs/msg")
}

func benchPublishReceive(b *testing.B, size int) {
	broker := testbroker.Start(b)
	client, err := nervebus.NewClient(broker.Addr)
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	topic := fmt.Sprintf("bench-%d-%d", size, b.N)
	data := make([]byte, size)
	b.ResetTimer()

	phase(b, "publish", broker.Pid(), func() {
		pub := client.Publisher(topic, nil)
		results := make([]*nervebus.PublishResult, 0, b.N)
		for range b.N {
			results = append(results, pub.Publish(ctx, &nervebus.Message{Data: data}))
		}
		for _, r := range results {
			if _, err := r.Get(ctx); err != nil {
				b.Fatal(err)
			}
		}
		if err := pub.Close(ctx); err != nil {
			b.Fatal(err)
		}
	})

	phase(b, "receive", broker.Pid(), func() {
		rctx, stop := context.WithCancel(ctx)
		defer stop()
		var handled atomic.Int64
		sub := client.Subscriber(topic, "bench", &nervebus.SubscriberConfig{Start: nervebus.StartEarliest()})
		err := sub.Receive(rctx, func(_ context.Context, m *nervebus.Message) {
			m.Ack()
			if handled.Add(1) == int64(b.N) {
				stop()
			}
		})
		if err != nil {
			b.Fatal(err)
		}
		if got := handled.Load(); got != int64(b.N) {
			b.Fatalf("handled %d of %d messages", got, b.N)
		}
	})
}
