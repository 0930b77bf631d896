// Command quickstart publishes a few messages to a NerveBus broker and receives them back.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"sync/atomic"

	nervebus "github.com/nervebus/nervebus/clients/go"
)

func main() {
	addr := os.Getenv("NERVEBUS_ADDR")
	if addr == "" {
		addr = "127.0.0.1:7070"
	}
	flag.StringVar(&addr, "addr", addr, "broker address host:port (default $NERVEBUS_ADDR or 127.0.0.1:7070)")
	n := flag.Int("n", 3, "how many messages to publish and receive")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, addr, *n); err != nil {
		log.Fatal(err)
	}
}

// run publishes n messages to the topic "quickstart-go", then receives n messages on its
// subscription "quickstart-go-sub" (which starts at the earliest message the first time).
func run(ctx context.Context, addr string, n int) error {
	client, err := nervebus.NewClient(addr)
	if err != nil {
		return err
	}
	defer client.Close()

	// Publish: batched in the background; Get waits until the broker has the message.
	pub := client.Publisher("quickstart-go", nil)
	var results []*nervebus.PublishResult
	for i := range n {
		results = append(results, pub.Publish(ctx, &nervebus.Message{Data: fmt.Appendf(nil, "hello %d", i)}))
	}
	for _, res := range results {
		receipt, err := res.Get(ctx)
		if err != nil {
			return err
		}
		fmt.Printf("published seq %d (trace %s)\n", receipt.Seq, receipt.TraceID)
	}
	if err := pub.Close(ctx); err != nil {
		return err
	}

	// Receive: the handler runs for each message, concurrently, until ctx is cancelled.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var received atomic.Int64
	sub := client.Subscriber("quickstart-go", "quickstart-go-sub", &nervebus.SubscriberConfig{Start: nervebus.StartEarliest()})
	return sub.Receive(ctx, func(ctx context.Context, m *nervebus.Message) {
		fmt.Printf("received seq %d: %s\n", m.Seq, m.Data)
		m.Ack()
		if received.Add(1) == int64(n) {
			cancel() // Receive returns nil once the acks are sent
		}
	})
}
