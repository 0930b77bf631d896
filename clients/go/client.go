package nervebus

import (
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	nervebusv1 "github.com/nervebus/nervebus/clients/go/gen/nervebus/v1"
)

// Client is a connection to one NerveBus broker, shared by the publishers and subscribers made
// from it. It is safe for concurrent use. Close it when done.
type Client struct {
	conn      grpc.ClientConnInterface
	closeConn func() error
	publisher nervebusv1.PublisherServiceClient
	receiver  nervebusv1.SubscriberServiceClient
	tracing   tracing
}

// Option configures a [Client].
type Option func(*clientOptions)

type clientOptions struct {
	conn           grpc.ClientConnInterface
	creds          credentials.TransportCredentials
	tlsConfig      *tls.Config
	tokens         TokenSource
	dialOptions    []grpc.DialOption
	tracerProvider trace.TracerProvider
	propagator     propagation.TextMapPropagator
}

// WithConn makes the client use an existing gRPC connection instead of dialing one; the
// caller keeps ownership of it ([Client.Close] does not close it). The address given to
// [NewClient] is then ignored.
func WithConn(conn grpc.ClientConnInterface) Option {
	return func(o *clientOptions) { o.conn = conn }
}

// WithTransportCredentials sets the connection's credentials, for example TLS. The default is
// a plaintext connection.
func WithTransportCredentials(creds credentials.TransportCredentials) Option {
	return func(o *clientOptions) { o.creds = creds }
}

// WithDialOptions adds gRPC dial options, applied after the client's own (so they win).
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(o *clientOptions) { o.dialOptions = append(o.dialOptions, opts...) }
}

// WithTracerProvider sets the OpenTelemetry tracer provider of the publish and process spans.
// The default is the global one (otel.GetTracerProvider()), which does nothing until the
// application installs an SDK.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *clientOptions) { o.tracerProvider = tp }
}

// WithPropagator sets how trace context is written to and read from message attributes. The
// default is the W3C Trace Context propagator (attributes `traceparent` and `tracestate`),
// whatever the global propagator is, since that is what the broker understands.
func WithPropagator(p propagation.TextMapPropagator) Option {
	return func(o *clientOptions) { o.propagator = p }
}

// NewClient makes a client of the broker at addr ("host:port"). The connection is made lazily
// and remade after failures, so NewClient does not fail when the broker is down; calls fail
// with UNAVAILABLE until it is up (publishes and Receive retry).
func NewClient(addr string, opts ...Option) (*Client, error) {
	var o clientOptions
	for _, opt := range opts {
		opt(&o)
	}
	c := &Client{closeConn: func() error { return nil }}
	if o.conn != nil && (o.tlsConfig != nil || o.tokens != nil) {
		return nil, errors.New("nervebus: NewClient: WithConn takes the connection as it is; give it TLS and tokens yourself")
	}
	if o.creds != nil && o.tlsConfig != nil {
		return nil, errors.New("nervebus: NewClient: WithTLS and WithTransportCredentials both set the transport; use one")
	}
	dialed := ""
	if o.conn != nil {
		c.conn = o.conn
	} else {
		if addr == "" {
			return nil, errors.New("nervebus: NewClient: empty broker address")
		}
		creds := o.creds
		if o.tlsConfig != nil {
			creds = credentials.NewTLS(o.tlsConfig)
		}
		if creds == nil {
			if o.tokens != nil {
				return nil, errors.New("nervebus: NewClient: a token is sent over TLS only; add WithTLS")
			}
			creds = insecure.NewCredentials()
		}
		dial := []grpc.DialOption{
			grpc.WithTransportCredentials(creds),
			// Reconnect quickly after a broker restart; grpc's default backoff grows to 2 min.
			grpc.WithConnectParams(grpc.ConnectParams{
				Backoff: backoff.Config{
					BaseDelay:  100 * time.Millisecond,
					Multiplier: 1.6,
					Jitter:     0.2,
					MaxDelay:   5 * time.Second,
				},
				MinConnectTimeout: 5 * time.Second,
			}),
			// Notice a dead broker on an idle Receive stream. The broker allows pings every 10 s.
			grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
			// A delivery batch holds up to ~1 MiB plus one message of up to the broker's max
			// message size, which may be configured above grpc's default 4 MiB limit.
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(256 << 20)),
		}
		if o.tokens != nil {
			dial = append(dial, grpc.WithPerRPCCredentials(bearerCredentials{o.tokens}))
		}
		conn, err := grpc.NewClient(addr, append(dial, o.dialOptions...)...)
		if err != nil {
			return nil, fmt.Errorf("nervebus: connect to %s: %w", addr, err)
		}
		c.conn = conn
		c.closeConn = conn.Close
		dialed = addr
	}
	c.publisher = nervebusv1.NewPublisherServiceClient(c.conn)
	c.receiver = nervebusv1.NewSubscriberServiceClient(c.conn)
	tp := o.tracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	prop := o.propagator
	if prop == nil {
		prop = propagation.TraceContext{}
	}
	c.tracing = newTracing(tp, prop, dialed)
	return c, nil
}

// Conn returns the client's gRPC connection, for calling services this package does not wrap.
func (c *Client) Conn() grpc.ClientConnInterface { return c.conn }

// Close closes the connection (unless it came from [WithConn]). Close publishers first so
// that their buffered messages are sent, and stop every Receive.
func (c *Client) Close() error {
	if err := c.closeConn(); err != nil {
		return fmt.Errorf("nervebus: close connection: %w", err)
	}
	return nil
}
