package nervebus_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	nervebus "github.com/nervebus/nervebus/clients/go"
	"github.com/nervebus/nervebus/clients/go/internal/testbroker"
)

const goToken = "go-client-token-51c9"

// securityFiles makes a CA, a server and a "go-client" client certificate with the
// repository's scripts/make-certs.sh, a tokens file and a policy, all in a temporary folder.
func securityFiles(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	script := ""
	for d, _ := os.Getwd(); d != filepath.Dir(d); d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "scripts", "make-certs.sh")); err == nil {
			script = filepath.Join(d, "scripts", "make-certs.sh")
			break
		}
	}
	if script == "" {
		t.Fatal("scripts/make-certs.sh not found above the working directory")
	}
	if out, err := exec.Command("bash", script, dir, "go-client").CombinedOutput(); err != nil {
		t.Fatalf("make-certs.sh: %v\n%s", err, out)
	}
	sum := sha256.Sum256([]byte(goToken))
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("tokens", hex.EncodeToString(sum[:])+" go-user\n")
	write("policy.json", `{"principals": {
		"go-user": [{"allow": ["publish", "subscribe"], "topics": ["go-*"]}],
		"go-client": [{"allow": ["publish", "subscribe"], "topics": ["go-*"]}]}}`)
	return dir
}

// roundTrip publishes one message and receives it on a new subscription.
func roundTrip(t *testing.T, c *nervebus.Client, topic string) {
	t.Helper()
	ctx := testContext(t, 30*time.Second)
	pub := c.Publisher(topic, nil)
	if _, err := pub.Publish(ctx, &nervebus.Message{Data: []byte("secret")}).Get(ctx); err != nil {
		t.Fatalf("publish: %v", err)
	}
	_ = pub.Close(ctx)
	got := newCollector()
	sub := c.Subscriber(topic, "s", &nervebus.SubscriberConfig{Start: nervebus.StartEarliest()})
	stop := receiveInBackground(t, sub, func(_ context.Context, m *nervebus.Message) {
		got.add(m)
		m.Ack()
	})
	if m := got.wait(t, 1, 20*time.Second); string(m[0].Data) != "secret" {
		t.Fatalf("received %q", m[0].Data)
	}
	_ = stop()
}

func TestTLSWithTokenSource(t *testing.T) {
	t.Parallel()
	dir := securityFiles(t)
	b := testbroker.Start(t, "--tls-cert", filepath.Join(dir, "server.crt"), "--tls-key", filepath.Join(dir, "server.key"),
		"--auth-tokens", filepath.Join(dir, "tokens"), "--auth-policy", filepath.Join(dir, "policy.json"))
	cfg, err := nervebus.LoadTLSConfig(filepath.Join(dir, "ca.crt"), "", "")
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	source := nervebus.TokenSourceFunc(func(context.Context) (string, error) {
		calls.Add(1)
		return goToken, nil
	})
	roundTrip(t, newClient(t, b, nervebus.WithTLS(cfg), nervebus.WithTokenSource(source)), "go-token")
	if calls.Load() < 2 {
		t.Fatalf("the token source ran %d times, want one per call", calls.Load())
	}

	// Without a token: UNAUTHENTICATED, not retried.
	anon := newClient(t, b, nervebus.WithTLS(cfg))
	ctx := testContext(t, 20*time.Second)
	_, err = anon.Publisher("go-anon", nil).Publish(ctx, &nervebus.Message{Data: []byte("x")}).Get(ctx)
	if nervebus.Code(err) != codes.Unauthenticated {
		t.Fatalf("publish without a token: %v, want UNAUTHENTICATED", err)
	}
	// A token over plaintext is refused before anything is sent.
	if _, err := nervebus.NewClient(b.Addr, nervebus.WithToken(goToken)); err == nil || !strings.Contains(err.Error(), "over TLS only") {
		t.Fatalf("NewClient with a token and no TLS: %v", err)
	}
}

func TestMutualTLS(t *testing.T) {
	t.Parallel()
	dir := securityFiles(t)
	b := testbroker.Start(t, "--tls-cert", filepath.Join(dir, "server.crt"), "--tls-key", filepath.Join(dir, "server.key"),
		"--tls-client-ca", filepath.Join(dir, "ca.crt"), "--auth-policy", filepath.Join(dir, "policy.json"))
	cfg, err := nervebus.LoadTLSConfig(filepath.Join(dir, "ca.crt"), filepath.Join(dir, "go-client.crt"), filepath.Join(dir, "go-client.key"))
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t, b, nervebus.WithTLS(cfg))
	roundTrip(t, c, "go-mtls")
	ctx := testContext(t, 20*time.Second)
	_, err = c.Publisher("elsewhere", nil).Publish(ctx, &nervebus.Message{Data: []byte("x")}).Get(ctx)
	if nervebus.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), `"go-client" (certificate)`) {
		t.Fatalf("publish outside the policy: %v, want PERMISSION_DENIED naming the certificate's CN", err)
	}
}
