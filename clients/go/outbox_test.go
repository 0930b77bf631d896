package nervebus_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"regexp"
	"sync"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"go.opentelemetry.io/otel/trace"

	nervebus "github.com/nervebus/nervebus/clients/go"
	"github.com/nervebus/nervebus/clients/go/internal/testbroker"
)

// outboxDB makes a fresh database on server (a mysql:// URL) and returns its mysql:// URL and
// a database/sql handle on it.
func outboxDB(t *testing.T, server, name string) (string, *sql.DB) {
	t.Helper()
	u, err := url.Parse(server)
	if err != nil {
		t.Fatal(err)
	}
	pass, _ := u.User.Password()
	dsn := fmt.Sprintf("%s:%s@tcp(%s)/", u.User.Username(), pass, u.Host)
	admin, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec("DROP DATABASE IF EXISTS " + name); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("mysql", dsn+name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return server + name, db
}

// writeInTx runs WriteOutbox in a transaction of its own, committed or rolled back.
func writeInTx(t *testing.T, ctx context.Context, db *sql.DB, m *nervebus.Message, commit bool) int64 {
	t.Helper()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := nervebus.WriteOutbox(ctx, tx, "outbox-go", m)
	if err != nil {
		t.Fatal(err)
	}
	if commit {
		err = tx.Commit()
	} else {
		err = tx.Rollback()
	}
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestWriteOutbox: a broker with --outbox on a real MariaDB relays what committed transactions
// wrote, once, in order, with the caller's trace context; a rolled-back write never appears.
func TestWriteOutbox(t *testing.T) {
	server := testbroker.StartMariaDB(t)
	outboxURL, db := outboxDB(t, server, "outbox_go")
	b := testbroker.Start(t, "--outbox", outboxURL, "--outbox-gap-wait-ms", "50")
	c := newClient(t, b)
	ctx := testContext(t, 60*time.Second)
	for i := 0; ; i++ { // the broker creates the table once its relay runs
		if _, err := db.ExecContext(ctx, "SELECT 1 FROM nb_outbox_relay"); err == nil {
			break
		} else if i > 200 {
			t.Fatalf("outbox tables never appeared: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	writeInTx(t, ctx, db, &nervebus.Message{Data: []byte("rolled back"), OrderingKey: "k"}, false)
	traceID, _ := trace.TraceIDFromHex("0af7651916cd43dd8448eb211c80319c")
	spanID, _ := trace.SpanIDFromHex("b7ad6b7169203331")
	traced := trace.ContextWithSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: traceID, SpanID: spanID, TraceFlags: trace.FlagsSampled, Remote: true,
	}))
	id := writeInTx(t, traced, db, &nervebus.Message{
		Data: []byte("first"), OrderingKey: "k", Attributes: map[string]string{"kind": "created"},
	}, true)
	for i := range 5 {
		writeInTx(t, ctx, db, &nervebus.Message{Data: fmt.Appendf(nil, "k-%d", i), OrderingKey: "k"}, true)
	}

	var mu sync.Mutex
	var got []*nervebus.Message
	rctx, cancel := context.WithCancel(ctx)
	sub := c.Subscriber("outbox-go", "check", &nervebus.SubscriberConfig{Start: nervebus.StartEarliest()})
	err := sub.Receive(rctx, func(_ context.Context, m *nervebus.Message) {
		m.Ack()
		mu.Lock()
		defer mu.Unlock()
		got = append(got, m)
		if string(m.Data) == "k-4" {
			cancel()
		}
	})
	if ctx.Err() != nil {
		t.Fatalf("timed out after %d messages (Receive: %v)", len(got), err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"first", "k-0", "k-1", "k-2", "k-3", "k-4"}
	if len(got) != len(want) {
		t.Fatalf("got %d messages, want %d", len(got), len(want))
	}
	for i, m := range got {
		if string(m.Data) != want[i] {
			t.Fatalf("message %d is %q, want %q (commit order, nothing rolled back)", i, m.Data, want[i])
		}
	}
	first := got[0]
	if first.TraceID != "0af7651916cd43dd8448eb211c80319c" || first.Attributes["kind"] != "created" || first.OrderingKey != "k" {
		t.Fatalf("first message lost what was written: trace %q, attributes %v, key %q", first.TraceID, first.Attributes, first.OrderingKey)
	}
	if !regexp.MustCompile(fmt.Sprintf(`^outbox/[0-9a-f]{16}/%d$`, id)).MatchString(first.ID) {
		t.Fatalf("message id %q does not name row %d", first.ID, id)
	}
	var left int
	for i := 0; ; i++ {
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM nb_outbox").Scan(&left); err != nil {
			t.Fatal(err)
		}
		if left == 0 {
			break
		}
		if i > 100 {
			t.Fatalf("%d rows left in the outbox", left)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
