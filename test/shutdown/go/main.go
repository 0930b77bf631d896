// Command publish is the Go publisher of the shutdown test (test/shutdown/): it publishes
// messages with ids and payloads "<prefix>-0", "<prefix>-1", … to one topic with the
// repository's Go client, -window at a time, until its standard input closes. After each
// window's answers it prints "answered N" (N messages published so far); at the end it prints
// one JSON line: how many messages it published, how many of them failed (with the first
// errors), and how many the broker reported as duplicates (a retry of a pack that had landed
// before the broker went away).
//
//	go run . -addr 127.0.0.1:7070 -topic shutdown -prefix go
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"sync/atomic"
	"time"

	nervebus "github.com/nervebus/nervebus/clients/go"
)

type summary struct {
	Lang       string   `json:"lang"`
	Published  int      `json:"published"`
	Failed     int      `json:"failed"`
	Duplicates int      `json:"duplicates"`
	Errors     []string `json:"errors"`
}

func main() {
	addr := flag.String("addr", "127.0.0.1:7070", "broker address host:port")
	topic := flag.String("topic", "shutdown", "topic to publish to")
	prefix := flag.String("prefix", "go", "message id and payload prefix")
	window := flag.Int("window", 100, "messages published before waiting for their answers")
	flag.Parse()

	client, err := nervebus.NewClient(*addr)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	// Retries go on for as long as a pack needs: the test, not the client, bounds the run.
	pub := client.Publisher(*topic, &nervebus.PublisherConfig{Timeout: 5 * time.Minute})

	var stop atomic.Bool
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		stop.Store(true)
	}()

	s := summary{Lang: "go", Errors: []string{}}
	ctx := context.Background()
	for !stop.Load() {
		results := make([]*nervebus.PublishResult, *window)
		for j := range results {
			id := fmt.Sprintf("%s-%d", *prefix, s.Published+j)
			results[j] = pub.Publish(ctx, &nervebus.Message{ID: id, Data: []byte(id)})
		}
		s.Published += len(results)
		for _, r := range results {
			receipt, err := r.Get(ctx)
			switch {
			case err != nil:
				s.Failed++
				if len(s.Errors) < 5 {
					s.Errors = append(s.Errors, err.Error())
				}
			case receipt.Outcome == nervebus.OutcomeDuplicate:
				s.Duplicates++
			}
		}
		fmt.Printf("answered %d\n", s.Published)
	}
	if err := pub.Close(ctx); err != nil {
		log.Fatal(err)
	}
	if err := json.NewEncoder(os.Stdout).Encode(s); err != nil {
		log.Fatal(err)
	}
}
